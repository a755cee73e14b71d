//! Where `eval --data` finds its questions: a JSON Lines file, a parquet file, a directory of
//! parquet files, or a dataset repo on the Hugging Face Hub (`owner/name[@revision]`).
//!
//! The Hub's datasets are parquet files, laid out by split: `data/testmini-00000-of-00001-….parquet`
//! (what `push_to_hub` writes), `testmini.parquet`, or `<subset>/<split>/0000.parquet` (the
//! Hub's converted branch, `@refs/convert/parquet`). [`split_of`] reads a file's split and subset
//! from its path; `--split` picks the split (needed when there is more than one) and `--subset`
//! the subset (needed when a split is in more than one). Only the picked files are fetched, into
//! the Hugging Face cache with the project's Hub client.
//!
//! Each parquet row becomes the same record a JSON Lines line is: columns become fields (nested
//! ones as objects and lists), and the picture comes from the Hub's image column, a struct of
//! `bytes` and `path` named `decoded_image` (MathVista, MathVision) or `image` (MathVerse), or
//! from the first entry of an `images` list.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;

use super::dataset::{parse_record, read_jsonl, BadLine, Dataset, ImageRef, Question};
use crate::error::{Error, Result};
use crate::hub::{self, HubConfig, Progress, RepoRef};

/// What `--data`, `--split` and `--subset` asked for.
#[derive(Debug, Clone)]
pub struct DataRequest {
    pub data: String,
    pub split: Option<String>,
    pub subset: Option<String>,
    pub skip_bad: bool,
}

/// Reads the dataset `request` names, downloading a Hub dataset's files first.
pub fn open(request: &DataRequest, config: &HubConfig, progress: &mut dyn Progress) -> Result<Dataset> {
    let path = PathBuf::from(&request.data);
    if path.exists() || hub::looks_like_a_path(&request.data) {
        return open_local(&path, request);
    }
    let Some(repo) = RepoRef::parse_dataset(&request.data) else {
        return Err(Error::invalid(format!(
            "--data {}: no such file, and not a Hub dataset id (owner/name or owner/name@revision); pass a .jsonl or .parquet file or a dataset repo id",
            request.data
        )));
    };
    let select = |files: &[String]| pick_split(files, request.split.as_deref(), request.subset.as_deref(), &format!("the dataset {repo}"));
    let (snapshot, picked) = hub::download_dataset(&repo, config, progress, &select).map_err(|e| match e {
        Error::Invalid(msg) => Error::Invalid(format!("--data {}: {msg}", request.data)),
        other => other,
    })?;
    let split = split_of(&picked[0]).0;
    let name = repo.repo.rsplit('/').next().unwrap_or(&repo.repo);
    let commit = snapshot.file_name().map(|c| c.to_string_lossy().chars().take(12).collect::<String>()).unwrap_or_default();
    let files: Vec<PathBuf> = picked.iter().map(|f| snapshot.join(f)).collect();
    let label = format!("{}@{commit}:{split}", repo.repo);
    read_parquet(&files, &label, &format!("{name}-{split}"), request.skip_bad)
}

fn open_local(path: &Path, request: &DataRequest) -> Result<Dataset> {
    let is_parquet = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if path.is_dir() {
        let mut files = Vec::new();
        hub::list_files(path, path, &mut files);
        files.sort();
        let picked = pick_split(&files, request.split.as_deref(), request.subset.as_deref(), &path.display().to_string())
            .map_err(|e| match e {
                Error::Invalid(msg) => Error::Invalid(format!("--data {}: {msg}", path.display())),
                other => other,
            })?;
        let split = split_of(&picked[0]).0;
        let stem = path.file_name().map_or("dataset".into(), |n| n.to_string_lossy().into_owned());
        let paths: Vec<PathBuf> = picked.iter().map(|f| path.join(f)).collect();
        return read_parquet(&paths, &format!("{}:{split}", path.display()), &format!("{stem}-{split}"), request.skip_bad);
    }
    for (flag, given) in [("--split", &request.split), ("--subset", &request.subset)] {
        if given.is_some() {
            return Err(Error::invalid(format!(
                "--data {}: {flag} picks among a Hub dataset's or a directory's parquet files; a single file has no splits, so leave {flag} out",
                path.display()
            )));
        }
    }
    if is_parquet(path) {
        let stem = path.file_stem().map_or("dataset".into(), |n| n.to_string_lossy().into_owned());
        return read_parquet(&[path.to_path_buf()], &path.display().to_string(), &stem, request.skip_bad);
    }
    read_jsonl(path, request.skip_bad)
}

/// The split and subset a parquet file's path says it holds: `data/testmini-00000-of-00001.parquet`
/// and `testmini.parquet` are split `testmini` of no subset; `<subset>/<split>/0000.parquet` and
/// `<subset>/<split>-00000-of-00002.parquet` name both.
pub fn split_of(file: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = file.split('/').collect();
    let stem = parts.last().copied().unwrap_or("").trim_end_matches(".parquet");
    let dirs = &parts[..parts.len().saturating_sub(1)];
    let from_stem = stem.split('-').next().unwrap_or(stem);
    // A shard numbered by itself (`0000`) is named by its directory.
    let (split, above) = if !from_stem.is_empty() && !from_stem.bytes().all(|b| b.is_ascii_digit()) {
        (from_stem.to_string(), dirs)
    } else {
        match dirs.split_last() {
            Some((d, rest)) => (d.to_string(), rest),
            None => (stem.to_string(), dirs),
        }
    };
    let subset = above.last().filter(|d| **d != "data").map(|d| d.to_string());
    (split, subset)
}

/// The parquet files of `split` (and `subset`) among `files`, or an error listing what there is.
pub fn pick_split(files: &[String], split: Option<&str>, subset: Option<&str>, what: &str) -> Result<Vec<String>> {
    let parquet: Vec<(&String, String, Option<String>)> = files
        .iter()
        .filter(|f| f.to_ascii_lowercase().ends_with(".parquet"))
        .map(|f| {
            let (s, sub) = split_of(f);
            (f, s, sub)
        })
        .collect();
    if parquet.is_empty() {
        return Err(Error::invalid(format!(
            "{what} has no parquet files; for a Hub dataset stored otherwise, try the Hub's converted branch (owner/name@refs/convert/parquet)"
        )));
    }
    let listed = |items: Vec<String>| {
        let mut items = items;
        items.sort();
        items.dedup();
        items.join(", ")
    };
    let in_subset: Vec<_> = parquet.iter().filter(|(_, _, sub)| subset.is_none_or(|want| sub.as_deref() == Some(want))).collect();
    if in_subset.is_empty() {
        let subsets = listed(parquet.iter().filter_map(|(_, _, s)| s.clone()).collect());
        let have = if subsets.is_empty() { "none".to_string() } else { subsets };
        return Err(Error::invalid(format!("{what} has no subset {:?} (its subsets: {have}); pick one with --subset", subset.unwrap_or(""))));
    }
    let splits = listed(in_subset.iter().map(|(_, s, _)| s.clone()).collect());
    let want = match split {
        Some(s) => s.to_string(),
        None if !splits.contains(", ") => splits.clone(),
        None => return Err(Error::invalid(format!("{what} has several splits ({splits}); pick one with --split"))),
    };
    let chosen: Vec<_> = in_subset.iter().filter(|(_, s, _)| *s == want).collect();
    if chosen.is_empty() {
        return Err(Error::invalid(format!("{what} has no split {want:?} (its splits: {splits}); pick one with --split")));
    }
    let subsets: Vec<String> = chosen.iter().filter_map(|(_, _, s)| s.clone()).collect();
    let distinct = listed(subsets.clone());
    if subset.is_none() && (distinct.contains(", ") || (!subsets.is_empty() && subsets.len() != chosen.len())) {
        let distinct = if subsets.len() != chosen.len() { format!("the default, {distinct}") } else { distinct };
        return Err(Error::invalid(format!("{what} has split {want:?} in several subsets ({distinct}); pick one with --subset")));
    }
    let mut out: Vec<String> = chosen.iter().map(|(f, _, _)| (*f).clone()).collect();
    out.sort();
    Ok(out)
}

/// The image columns of the Hub's datasets, most decoded first.
const IMAGE_COLUMNS: [&str; 3] = ["decoded_image", "image", "images"];

/// Reads the rows of `files` (in order) as questions; `label` names the dataset in messages and
/// in the run's identity, `name` its directory in the paper's output layout.
pub fn read_parquet(files: &[PathBuf], label: &str, name: &str, skip_bad: bool) -> Result<Dataset> {
    let mut questions: Vec<Question> = Vec::new();
    let mut bad = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut n = 0usize;
    for file in files {
        let unreadable = |e: parquet::errors::ParquetError| {
            Error::invalid(format!("--data {}: not a readable parquet file ({e}); fetch it again or pass another file", file.display()))
        };
        let handle = std::fs::File::open(file).map_err(|source| Error::Io { path: file.clone(), source })?;
        let reader = SerializedFileReader::new(handle).map_err(unreadable)?;
        let dir = file.parent().unwrap_or(Path::new("."));
        for (i, row) in reader.get_row_iter(None).map_err(unreadable)?.enumerate() {
            n += 1;
            let where_ = format!("{} row {}", file.display(), i + 1);
            let row = row.map_err(unreadable)?;
            let (record, image) = row_record(&row, &where_);
            let parsed = match image {
                Ok(image) => parse_record(record, n, dir, &where_, image),
                Err(reason) => Err((format!("row-{n}"), reason)),
            };
            match parsed {
                Ok(q) if !seen.insert(q.id.clone()) => {
                    let reason = format!("{where_}: id {:?} is used by an earlier row; ids must be unique", q.id);
                    if !skip_bad {
                        return Err(Error::invalid(reason));
                    }
                    bad.push(BadLine { id: format!("row-{n}"), line: n, reason });
                }
                Ok(q) => questions.push(q),
                Err((id, reason)) => {
                    if !skip_bad {
                        return Err(Error::invalid(format!("{reason} (or pass --skip-bad to record it as skipped)")));
                    }
                    bad.push(BadLine { id, line: n, reason });
                }
            }
        }
    }
    if questions.is_empty() && bad.is_empty() {
        return Err(Error::invalid(format!("--data {label}: the dataset holds no rows")));
    }
    Ok(Dataset { path: PathBuf::from(label), name: name.to_string(), questions, bad })
}

/// A row as a record, with its picture taken out of the image column (`Ok(None)` when the row
/// has none; `Err` when the column is there but unusable).
fn row_record(row: &parquet::record::Row, where_: &str) -> (serde_json::Map<String, Value>, std::result::Result<Option<ImageRef>, String>) {
    let mut record = serde_json::Map::new();
    let mut image: Option<std::result::Result<ImageRef, String>> = None;
    let columns: Vec<(&String, &Field)> = row.get_column_iter().collect();
    for (name, field) in &columns {
        if IMAGE_COLUMNS.contains(&name.as_str()) {
            let found = image_of(field, &format!("{where_} ({name})"));
            // The first column that holds picture bytes wins; a plain path column (MathVista's
            // `image` next to its `decoded_image`) is kept as a field.
            match found {
                Some(Ok(img)) if image.as_ref().is_none_or(|i| i.is_err()) => image = Some(Ok(img)),
                Some(Err(e)) if image.is_none() => image = Some(Err(e)),
                None if !matches!(field, Field::Null) && !matches!(field, Field::Group(_) | Field::ListInternal(_)) => {
                    record.insert(format!("{name}_path"), field.to_json_value());
                }
                _ => {}
            }
            continue;
        }
        record.insert((*name).clone(), field.to_json_value());
    }
    let image = match image {
        None => Ok(None),
        Some(Ok(i)) => Ok(Some(i)),
        Some(Err(e)) => Err(e),
    };
    (record, image)
}

/// The picture in an image column's value: a struct with `bytes` (the Hub's Image feature), or a
/// list of them (the first is taken). `None` when the value holds no picture bytes.
fn image_of(field: &Field, label: &str) -> Option<std::result::Result<ImageRef, String>> {
    match field {
        Field::Group(g) => {
            let bytes = g.get_column_iter().find(|(k, _)| k.as_str() == "bytes").map(|(_, v)| v);
            match bytes {
                Some(Field::Bytes(b)) if !b.data().is_empty() => {
                    Some(Ok(ImageRef::Bytes { label: PathBuf::from(label), data: Arc::from(b.data()) }))
                }
                Some(Field::Bytes(_)) => Some(Err(format!("{label}: the image column's bytes are empty"))),
                _ => None,
            }
        }
        Field::ListInternal(list) => list.elements().iter().find_map(|f| image_of(f, label)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &[&str]) -> Vec<String> {
        files.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_files_path_gives_its_split_and_subset() {
        assert_eq!(split_of("data/testmini-00000-of-00001-725687bf7a18d64b.parquet"), ("testmini".into(), None));
        assert_eq!(split_of("testmini.parquet"), ("testmini".into(), None));
        assert_eq!(split_of("default/test/0000.parquet"), ("test".into(), Some("default".into())));
        assert_eq!(split_of("text_only/testmini-00000-of-00002.parquet"), ("testmini".into(), Some("text_only".into())));
    }

    #[test]
    fn the_split_is_picked_or_the_choice_is_listed() {
        let files = names(&["README.md", "data/test-00000-of-00002.parquet", "data/test-00001-of-00002.parquet", "data/testmini-00000-of-00001.parquet", "images.zip"]);
        assert_eq!(pick_split(&files, Some("testmini"), None, "d").unwrap(), names(&["data/testmini-00000-of-00001.parquet"]));
        assert_eq!(pick_split(&files, Some("test"), None, "d").unwrap().len(), 2);
        let e = pick_split(&files, None, None, "the dataset o/n").unwrap_err().to_string();
        assert!(e.contains("several splits (test, testmini); pick one with --split"), "{e}");
        let e = pick_split(&files, Some("train"), None, "d").unwrap_err().to_string();
        assert!(e.contains("no split \"train\" (its splits: test, testmini)"), "{e}");
        let one = names(&["testmini.parquet"]);
        assert_eq!(pick_split(&one, None, None, "d").unwrap(), one);
        assert!(pick_split(&names(&["a.jsonl"]), None, None, "d").unwrap_err().to_string().contains("refs/convert/parquet"));
    }

    #[test]
    fn a_split_in_several_subsets_needs_a_subset() {
        let files = names(&["default/testmini/0000.parquet", "text_only/testmini/0000.parquet"]);
        let e = pick_split(&files, Some("testmini"), None, "d").unwrap_err().to_string();
        assert!(e.contains("several subsets (default, text_only); pick one with --subset"), "{e}");
        assert_eq!(pick_split(&files, Some("testmini"), Some("text_only"), "d").unwrap(), names(&["text_only/testmini/0000.parquet"]));
        let e = pick_split(&files, None, Some("vision"), "d").unwrap_err().to_string();
        assert!(e.contains("no subset \"vision\" (its subsets: default, text_only)"), "{e}");
    }
}
