//! The JSON files of a checkpoint (config.json, preprocessor_config.json) read with serde, as
//! transformers reads them: keys it does not know are ignored, a `null` counts as absent (the
//! value written for a setting left unset, which takes the class default), and a value of the
//! wrong type is refused with one line that names the file and the key, e.g.
//! ``…/config.json: `vision_config.depth` must be a non-negative integer, got "x"; fix the value``.
//!
//! The readers declare what they read as `#[derive(Deserialize)]` structs whose leaf fields go
//! through [`setting`] (which words the type errors) and whose defaults are the config class's.
//! serde_path_to_error supplies the key path of an error.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, Deserializer, Error as _, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::error::{Error, Result};

/// A leaf value of a checkpoint's JSON: what it must be, in words, and how to read it.
pub(crate) trait Setting: Sized {
    /// Completes "must be …" in an error message.
    const EXPECTED: &'static str;
    fn from_json(value: &Value) -> Option<Self>;
}

impl Setting for usize {
    const EXPECTED: &'static str = "a non-negative integer";
    fn from_json(value: &Value) -> Option<Self> {
        value.as_u64().and_then(|n| usize::try_from(n).ok())
    }
}

impl Setting for u32 {
    const EXPECTED: &'static str = "a non-negative integer below 2^32";
    fn from_json(value: &Value) -> Option<Self> {
        value.as_u64().and_then(|n| u32::try_from(n).ok())
    }
}

impl Setting for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_json(value: &Value) -> Option<Self> {
        value.as_f64()
    }
}

impl Setting for bool {
    const EXPECTED: &'static str = "true or false";
    fn from_json(value: &Value) -> Option<Self> {
        value.as_bool()
    }
}

impl Setting for String {
    const EXPECTED: &'static str = "a string";
    fn from_json(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_string)
    }
}

impl Setting for Vec<usize> {
    const EXPECTED: &'static str = "a list of non-negative integers";
    fn from_json(value: &Value) -> Option<Self> {
        value.as_array()?.iter().map(usize::from_json).collect()
    }
}

/// A key that may be absent: `None` then, and the inner type's rule otherwise.
impl<T: Setting> Setting for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_json(value: &Value) -> Option<Self> {
        T::from_json(value).map(Some)
    }
}

/// serde's `deserialize_with` for every leaf field: reads the value as a [`Setting`], or fails
/// with "must be …, got …".
pub(crate) fn setting<'de, D: Deserializer<'de>, T: Setting>(deserializer: D) -> Result<T, D::Error> {
    let value = Value::deserialize(deserializer)?;
    T::from_json(&value).ok_or_else(|| D::Error::custom(format!("must be {}, got {}", T::EXPECTED, brief(&value))))
}

/// serde's `deserialize_with` for a nested section (`size`, `rope_scaling`, ...): it must be a
/// JSON object. (serde would also take a list as a struct's fields in order, so `[]` would pass
/// as "all defaults".)
pub(crate) fn section<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    struct Object<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_map(Object(PhantomData))
}

/// [`section`] for a section that may be absent.
pub(crate) fn optional_section<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    section(deserializer).map(Some)
}

/// Parses the text of a checkpoint JSON file whose top level must be an object, with every
/// `null` inside objects removed (so that it takes the default). `path` names the file in errors.
pub(crate) fn parse_object(text: &str, path: &Path) -> Result<Value> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::config(path, format!("not valid JSON ({e}); fix or re-download the file")))?;
    if !value.is_object() {
        return Err(Error::config(path, "expected a JSON object at the top level; fix or re-download the file"));
    }
    Ok(without_nulls(value))
}

/// Reads `T` from `value`, the object found at `at` (`""` for the top level, else a dotted key
/// path such as `"vision_config"`) in the file `path`; errors name the key from the top level.
pub(crate) fn read<T: DeserializeOwned>(value: &Value, at: &str, path: &Path) -> Result<T> {
    if !value.is_object() {
        return Err(Error::config(path, format!("`{at}` must be an object, got {}; fix the value", brief(value))));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner().to_string();
        let mut key: Vec<String> = at.split('.').filter(|k| !k.is_empty()).map(str::to_string).collect();
        let mut found = Some(value);
        for segment in e.path() {
            match segment {
                Segment::Map { key: k } => {
                    found = found.and_then(|v| v.get(k));
                    key.push(k.clone());
                }
                Segment::Seq { index } => {
                    found = found.and_then(|v| v.get(index));
                    if let Some(last) = key.last_mut() {
                        last.push_str(&format!("[{index}]"));
                    }
                }
                Segment::Enum { .. } | Segment::Unknown => found = None,
            }
        }
        let key = if key.is_empty() { "(top level)".to_string() } else { key.join(".") };
        let message = match found {
            // A leaf field's own wording (see `setting`).
            _ if inner.starts_with("must be ") => inner,
            // The only other type serde checks here is that of a nested section.
            Some(v) if !v.is_object() => format!("must be an object, got {}", brief(v)),
            _ => inner,
        };
        Error::config(path, format!("`{key}` {message}; fix the value"))
    })
}

/// `value` with the `null` entries of its objects dropped, at every depth.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// A short rendering of a JSON value for error messages.
pub(crate) fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}
