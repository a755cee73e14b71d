//! LaTeX shown readably (the `\` toggle): `\frac{1}{2}` → ½ (`\frac{a+1}{b}` → (a+1)⁄b),
//! `\sqrt{x}` → √x, `\times` → ×, `\cdot` → ·, `\le` → ≤, `^2` → ², `x_1` → x₁, `^\circ` → °,
//! Greek letters, `\text{…}` → its text; `\left`, `\right` and the `\(` `\)` `\[` `\]`
//! delimiters vanish. Anything it does not know stays as written.
//!
//! A command spans several tokens (`\`, `frac`, `{`, `1`, `}{`, `2`, `}`), so a stream is
//! rendered as one text: the tokens joined, then converted, each piece of the output given to
//! the token where its source starts. The token that starts a construct shows all of it; the
//! tokens it swallowed show nothing (zero width) but stay in the stream: the cursor still steps
//! onto them (the construct's glyph is then highlighted, and the inspector shows the raw token),
//! and each keeps its own heat where it shows anything. Plain text maps one to one.

/// The rendering of a stream: per token, its shown text and the token whose text shows it (the
/// token itself, or the start of the construct that swallowed it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendered {
    pub texts: Vec<String>,
    pub owners: Vec<usize>,
}

const SYMBOLS: &[(&str, &str)] = &[
    ("times", "×"), ("cdot", "·"), ("div", "÷"), ("pm", "±"), ("mp", "∓"), ("le", "≤"), ("leq", "≤"), ("ge", "≥"),
    ("geq", "≥"), ("neq", "≠"), ("ne", "≠"), ("approx", "≈"), ("equiv", "≡"), ("sim", "∼"), ("infty", "∞"), ("circ", "∘"),
    ("degree", "°"), ("to", "→"), ("rightarrow", "→"), ("leftarrow", "←"), ("Rightarrow", "⇒"), ("implies", "⟹"),
    ("iff", "⟺"), ("ldots", "…"), ("dots", "…"), ("cdots", "⋯"), ("sum", "∑"), ("prod", "∏"), ("int", "∫"), ("in", "∈"),
    ("notin", "∉"), ("subset", "⊂"), ("subseteq", "⊆"), ("cup", "∪"), ("cap", "∩"), ("angle", "∠"), ("triangle", "△"),
    ("perp", "⊥"), ("parallel", "∥"), ("partial", "∂"), ("nabla", "∇"), ("forall", "∀"), ("exists", "∃"), ("neg", "¬"),
    ("land", "∧"), ("lor", "∨"), ("therefore", "∴"), ("because", "∵"), ("prime", "′"), ("alpha", "α"), ("beta", "β"),
    ("gamma", "γ"), ("delta", "δ"), ("epsilon", "ε"), ("varepsilon", "ε"), ("zeta", "ζ"), ("eta", "η"), ("theta", "θ"),
    ("vartheta", "ϑ"), ("iota", "ι"), ("kappa", "κ"), ("lambda", "λ"), ("mu", "μ"), ("nu", "ν"), ("xi", "ξ"), ("pi", "π"),
    ("rho", "ρ"), ("sigma", "σ"), ("tau", "τ"), ("upsilon", "υ"), ("phi", "φ"), ("varphi", "φ"), ("chi", "χ"), ("psi", "ψ"),
    ("omega", "ω"), ("Gamma", "Γ"), ("Delta", "Δ"), ("Theta", "Θ"), ("Lambda", "Λ"), ("Xi", "Ξ"), ("Pi", "Π"),
    ("Sigma", "Σ"), ("Phi", "Φ"), ("Psi", "Ψ"), ("Omega", "Ω"),
];

/// Commands shown as their argument's text.
const TEXTUAL: &[&str] = &["text", "mathrm", "mathbf", "mathit", "textbf", "textit", "operatorname", "mathsf", "mbox"];
/// Commands that vanish (sizing and spacing that a terminal cannot show).
const VANISH: &[&str] = &["left", "right", "displaystyle", "big", "Big", "bigl", "bigr", "!", "(", ")", "[", "]"];
const SPACES: &[&str] = &[",", ";", ":", " ", "quad", "qquad"];

const VULGAR: &[(&str, &str, &str)] = &[
    ("1", "2", "½"), ("1", "3", "⅓"), ("2", "3", "⅔"), ("1", "4", "¼"), ("3", "4", "¾"), ("1", "5", "⅕"), ("2", "5", "⅖"),
    ("3", "5", "⅗"), ("4", "5", "⅘"), ("1", "6", "⅙"), ("5", "6", "⅚"), ("1", "8", "⅛"), ("3", "8", "⅜"), ("5", "8", "⅝"),
    ("7", "8", "⅞"),
];

fn superscript(c: char) -> Option<char> {
    Some(match c {
        '0' => '⁰', '1' => '¹', '2' => '²', '3' => '³', '4' => '⁴', '5' => '⁵', '6' => '⁶', '7' => '⁷', '8' => '⁸', '9' => '⁹',
        '+' => '⁺', '-' => '⁻', '=' => '⁼', '(' => '⁽', ')' => '⁾', 'n' => 'ⁿ', 'i' => 'ⁱ', 'x' => 'ˣ', 'k' => 'ᵏ', 'T' => 'ᵀ',
        _ => return None,
    })
}

fn subscript(c: char) -> Option<char> {
    Some(match c {
        '0' => '₀', '1' => '₁', '2' => '₂', '3' => '₃', '4' => '₄', '5' => '₅', '6' => '₆', '7' => '₇', '8' => '₈', '9' => '₉',
        '+' => '₊', '-' => '₋', '=' => '₌', '(' => '₍', ')' => '₎', 'a' => 'ₐ', 'e' => 'ₑ', 'i' => 'ᵢ', 'j' => 'ⱼ', 'k' => 'ₖ',
        'm' => 'ₘ', 'n' => 'ₙ', 'x' => 'ₓ',
        _ => return None,
    })
}

/// A command's name at `at` (just after a backslash): letters, or one other character.
fn command_at(s: &str, at: usize) -> Option<&str> {
    let rest = &s[at..];
    let letters = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
    if letters > 0 {
        // A command cut off by the end of a growing stream is rendered again with the next token.
        return Some(&rest[..letters]);
    }
    rest.chars().next().map(|c| &rest[..c.len_utf8()])
}

/// The argument at `at` (spaces skipped): a braced group's inside, a command or one character;
/// and where it ends. `None` when the text ends first (the argument may be in a later token).
fn argument(s: &str, at: usize) -> Option<(&str, usize)> {
    let start = at + s[at..].len() - s[at..].trim_start_matches(' ').len();
    let rest = &s[start..];
    let c = rest.chars().next()?;
    match c {
        '{' => {
            let mut depth = 0usize;
            for (i, ch) in rest.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some((&rest[1..i], start + i + 1));
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        '\\' => {
            let name = command_at(s, start + 1)?;
            Some((&s[start..start + 1 + name.len()], start + 1 + name.len()))
        }
        '}' => None,
        c => Some((&rest[..c.len_utf8()], start + c.len_utf8())),
    }
}

/// A whole text converted (for arguments: their pieces joined).
pub fn pretty(s: &str) -> String {
    pieces(s).into_iter().map(|(_, p)| p).collect()
}

fn simple(s: &str) -> bool {
    s.chars().all(|c| c.is_alphanumeric() || c == '.')
}

fn script(inner: &str, map: fn(char) -> Option<char>, mark: char) -> String {
    let shown = pretty(inner);
    match shown.chars().map(map).collect::<Option<String>>() {
        Some(s) if !s.is_empty() => s,
        _ if simple(&shown) && shown.chars().count() == 1 => format!("{mark}{shown}"),
        _ => format!("{mark}({shown})"),
    }
}

/// The converted pieces of `s`, each with the byte offset where its source starts.
pub fn pieces(s: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or(' ');
        if let Some((piece, end)) = construct(s, i, c) {
            out.push((i, piece));
            i = end;
        } else {
            out.push((i, c.to_string()));
            i += c.len_utf8();
        }
    }
    out
}

/// The construct starting at `i` (a command, a script), converted, and where it ends.
fn construct(s: &str, i: usize, c: char) -> Option<(String, usize)> {
    match c {
        '\\' => {
            let name = command_at(s, i + 1)?;
            let after = i + 1 + name.len();
            if let Some((_, sym)) = SYMBOLS.iter().find(|(n, _)| *n == name) {
                return Some((sym.to_string(), after));
            }
            if VANISH.contains(&name) {
                return Some((String::new(), after));
            }
            if SPACES.contains(&name) {
                return Some((" ".into(), after));
            }
            if matches!(name, "{" | "}" | "%" | "$" | "#" | "&" | "_") {
                return Some((name.to_string(), after));
            }
            if TEXTUAL.contains(&name) {
                let (inner, end) = argument(s, after)?;
                return Some((pretty(inner), end));
            }
            match name {
                "frac" | "dfrac" | "tfrac" => {
                    let (num, j) = argument(s, after)?;
                    let (den, k) = argument(s, j)?;
                    let (n, d) = (pretty(num), pretty(den));
                    if let Some((_, _, v)) = VULGAR.iter().find(|(a, b, _)| *a == n && *b == d) {
                        return Some((v.to_string(), k));
                    }
                    let wrap = |x: String| if simple(&x) { x } else { format!("({x})") };
                    Some((format!("{}⁄{}", wrap(n), wrap(d)), k))
                }
                "sqrt" => {
                    let (inner, end) = argument(s, after)?;
                    let x = pretty(inner);
                    Some((if simple(&x) { format!("√{x}") } else { format!("√({x})") }, end))
                }
                _ => None,
            }
        }
        '^' => {
            let (inner, end) = argument(s, i + 1)?;
            if inner == "\\circ" {
                return Some(("°".into(), end));
            }
            Some((script(inner, superscript, '^'), end))
        }
        '_' => {
            let (inner, end) = argument(s, i + 1)?;
            Some((script(inner, subscript, '_'), end))
        }
        _ => None,
    }
}

/// Renders tokens `texts` (a stream, or the tail of one from a token boundary): see the module
/// docs. `offset` is the index of the first of them in the stream (for `owners`).
pub fn render(texts: &[&str], offset: usize) -> Rendered {
    let mut joined = String::new();
    let mut starts = Vec::with_capacity(texts.len());
    for t in texts {
        starts.push(joined.len());
        joined.push_str(t);
    }
    let token_at = |byte: usize| starts.partition_point(|&s| s <= byte).saturating_sub(1);
    let mut shown = vec![String::new(); texts.len()];
    let mut owners: Vec<usize> = (offset..offset + texts.len()).collect();
    let mut ps = pieces(&joined).into_iter().peekable();
    while let Some((at, piece)) = ps.next() {
        let end = ps.peek().map_or(joined.len(), |(next, _)| *next);
        let owner = token_at(at);
        shown[owner].push_str(&piece);
        // Tokens whose text starts inside this piece's source are swallowed by it (unless a
        // later piece of their own shows in them: see below).
        let mut k = owner + 1;
        while k < texts.len() && starts[k] < end {
            owners[k] = offset + owner;
            k += 1;
        }
    }
    for (k, text) in shown.iter().enumerate() {
        if !text.is_empty() {
            owners[k] = offset + k;
        }
    }
    Rendered { texts: shown, owners }
}
