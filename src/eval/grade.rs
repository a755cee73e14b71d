//! Grading a response against the truth as the paper's evaluation does.
//!
//! **Extraction** (the paper's `extract_answer`): the first `\boxed{…}` with its nested braces,
//! else the text inside the last `<answer>…</answer>`, else the last `Answer: X`; "Final Answer:"
//! is dropped from what was found.
//!
//! **Correctness** (the paper's `run_evaluate_math`): the truth is first turned into its option
//! letter when it is one of the choices (and a letter into its option text), then the extracted
//! answer is correct when it equals the truth ignoring case, or when the PRM800K-style grader
//! (`mathruler.grader.grade_answer`, called with the paper's argument order) finds the two
//! equivalent: equal after the MATH dataset's normalisation, or after PRM800K's (units, `\text`,
//! `^\circ`, thousands separators, LaTeX to plain text), or element by element equal in value.
//! Where the reference asks sympy whether the difference simplifies to 0, this module evaluates
//! the difference numerically (exact for numbers, at random points for the at most two unknowns
//! the reference allows); `tests/fixtures/grading/` holds the cases checked against the reference.

use regex::Regex;
use std::sync::OnceLock;

/// What grading found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Grade {
    /// The answer taken from the response (None when none was found).
    pub extracted: Option<String>,
    pub correct: bool,
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("a valid pattern"))
}

/// The first `\boxed{…}`'s content (nested braces kept); None when there is none or it is empty.
pub fn first_boxed(text: &str) -> Option<String> {
    let start = text.find("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1;
    let mut content = String::new();
    for c in text[start..].chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            break;
        }
        content.push(c);
    }
    (!content.is_empty()).then_some(content)
}

/// The answer a response gives; see the module docs.
pub fn extract_answer(response: &str) -> Option<String> {
    let clean = |s: &str| s.replace("Final Answer:", "").trim().to_string();
    if let Some(b) = first_boxed(response) {
        return Some(clean(&b));
    }
    if response.contains("</answer>") {
        let parts: Vec<&str> = response.split("<answer>").collect();
        if parts.len() > 1 {
            let inner = parts[parts.len() - 1].split("</answer>").next().unwrap_or("");
            return Some(clean(inner.trim()));
        }
    }
    static ANSWER: OnceLock<Regex> = OnceLock::new();
    let found = re(&ANSWER, r"Answer:\s*([A-Z]|\w[\w\.\-\+]*)").captures_iter(response).last()?;
    Some(clean(found.get(1).map_or("", |m| m.as_str())))
}

/// The option letters the reference uses for a list of choices.
const LETTERS: [&str; 7] = ["A", "B", "C", "D", "E", "F", "G"];

/// Grades `response` against `truth`, with the options of a multiple-choice question.
pub fn grade(truth: &str, choices: &[String], response: &str) -> Grade {
    let extracted = extract_answer(response);
    let correct = match extracted.as_deref() {
        Some(answer) if !answer.is_empty() => is_correct(truth, choices, answer),
        _ => false,
    };
    Grade { extracted, correct }
}

fn is_correct(truth: &str, choices: &[String], answer: &str) -> bool {
    // The truth as an option letter when it is one of the choices.
    let letter = choices.iter().position(|c| c == truth).and_then(|i| LETTERS.get(i)).map(|l| l.to_string());
    let processed = letter.unwrap_or_else(|| truth.to_string());
    // A letter's option text.
    let mut chars = processed.chars();
    let option_text = match (chars.next(), chars.next()) {
        (Some(c @ 'A'..='Z'), None) if !choices.is_empty() => choices.get((c as u8 - b'A') as usize).cloned(),
        _ => None,
    };
    // The reference passes the truth as `given_answer` and the response as `ground_truth`.
    processed.to_lowercase() == answer.to_lowercase()
        || equivalent(Some(&processed), answer)
        || equivalent(Some(truth), answer)
        || equivalent(option_text.as_deref(), answer)
}

/// The PRM800K-style check (`grade_answer(given, ground_truth)`).
pub fn equivalent(given: Option<&str>, ground_truth: &str) -> bool {
    let Some(given) = given else { return false };
    if mathd_normalize(ground_truth) == mathd_normalize(given) {
        return true;
    }
    let (gt, given) = (prm_normalize(ground_truth), prm_normalize(given));
    if gt == given {
        return true;
    }
    if given.is_empty() {
        return false;
    }
    let (gt_elems, given_elems) = (split_tuple(&gt), split_tuple(&given));
    if gt_elems.len() > 1 && (gt.chars().next() != given.chars().next() || gt.chars().last() != given.chars().last()) {
        return false;
    }
    if gt_elems.len() != given_elems.len() {
        return false;
    }
    gt_elems.iter().zip(&given_elems).all(|(g, a)| {
        if is_frac(g) && is_frac(a) {
            // Unreduced fractions are not the same answer.
            g == a
        } else if str_is_int(g) != str_is_int(a) {
            false
        } else {
            equal_in_value(g, a)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The MATH dataset's normalisation (`math_normalize.normalize_answer`).

/// Normalises as the MATH dataset does; where that code would raise, the trimmed input (with an
/// enclosing `\text{}` removed) is what it returns.
pub fn mathd_normalize(answer: &str) -> String {
    let answer = answer.trim();
    let answer = strip_text_wrapper(answer).map_or(answer.to_string(), |t| t.trim().to_string());
    strip_string(&answer).unwrap_or(answer)
}

/// The content of a whole-string `\text{…}` (Python's `^\\text\{(?P<text>.+?)\}$`).
fn strip_text_wrapper(s: &str) -> Option<String> {
    let inner = s.strip_prefix("\\text{")?.strip_suffix('}')?;
    (!inner.is_empty() && !inner.contains('\n')).then(|| inner.to_string())
}

fn strip_string(s: &str) -> Option<String> {
    let mut s = s.replace('\n', "").replace("\\!", "").replace("\\\\", "\\");
    s = s.replace("tfrac", "frac").replace("dfrac", "frac");
    s = s.replace("\\left", "").replace("\\right", "");
    s = s.replace("^{\\circ}", "").replace("^\\circ", "");
    s = s.replace("\\$", "");
    // Units on the right: "\text{ " describes units.
    let pieces: Vec<&str> = s.split("\\text{ ").collect();
    match pieces.len() {
        1 => {}
        2 => s = pieces[0].to_string(),
        _ => return None,
    }
    s = s.replace("\\%", "").replace('%', "");
    s = s.replace(" .", " 0.").replace("{.", "{0.");
    if s.is_empty() {
        return Some(s);
    }
    if s.starts_with('.') {
        s = format!("0{s}");
    }
    let sides: Vec<&str> = s.split('=').collect();
    if sides.len() == 2 && sides[0].chars().count() <= 2 {
        s = sides[1].to_string();
    }
    s = fix_sqrt(&s)?;
    s = s.replace(' ', "");
    s = fix_fracs(&s)?;
    if s == "0.5" {
        s = "\\frac{1}{2}".into();
    }
    Some(fix_a_slash_b(&s))
}

/// `\sqrt3` → `\sqrt{3}`.
fn fix_sqrt(s: &str) -> Option<String> {
    if !s.contains("\\sqrt") {
        return Some(s.to_string());
    }
    let mut parts = s.split("\\sqrt");
    let mut out = parts.next().unwrap_or("").to_string();
    for part in parts {
        let mut chars = part.chars();
        let first = chars.next()?;
        if first == '{' {
            out.push_str("\\sqrt");
            out.push_str(part);
        } else {
            out.push_str(&format!("\\sqrt{{{first}}}{}", chars.as_str()));
        }
    }
    Some(out)
}

/// `\frac12` → `\frac{1}{2}`, `\frac1{72}` → `\frac{1}{72}`. None where the reference gives up
/// and keeps the string as it was (it returns that, so callers use the input).
fn fix_fracs(s: &str) -> Option<String> {
    let mut parts = s.split("\\frac");
    let mut out = parts.next().unwrap_or("").to_string();
    for part in parts {
        out.push_str("\\frac");
        let chars: Vec<char> = part.chars().collect();
        // The reference reads `substr[0]` first: an empty piece raises.
        let first = *chars.first()?;
        if first == '{' {
            out.push_str(part);
            continue;
        }
        if chars.len() < 2 {
            return Some(s.to_string());
        }
        let (a, b) = (chars[0], chars[1]);
        let rest: String = chars[2..].iter().collect();
        if b != '{' {
            out.push_str(&format!("{{{a}}}{{{b}}}{rest}"));
        } else {
            out.push_str(&format!("{{{a}}}{b}{rest}"));
        }
    }
    Some(out)
}

/// `3/4` → `\frac{3}{4}` for plain integers.
fn fix_a_slash_b(s: &str) -> String {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() != 2 {
        return s.to_string();
    }
    match (python_int(parts[0]), python_int(parts[1])) {
        (Some(a), Some(b)) if s == format!("{a}/{b}") => format!("\\frac{{{a}}}{{{b}}}"),
        _ => s.to_string(),
    }
}

/// Python's `int(str)` for what the normaliser meets (surrounding spaces, a sign, digits).
fn python_int(s: &str) -> Option<i128> {
    let t = s.trim().replace('_', "");
    if t.is_empty() || t.starts_with("--") {
        return None;
    }
    t.parse::<i128>().ok()
}

// ---------------------------------------------------------------------------------------------
// PRM800K's normalisation (`grader._normalize`).

const UNITS: [&str; 16] = [
    "degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month", "year", "foot", "feet",
    "inch", "yard",
];

/// Python's `float(str)`, for the strings the grader meets.
fn python_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() || t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    let t = t.replace('_', "");
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return t.parse::<f64>().ok().or_else(|| lower.parse::<f64>().ok());
    }
    // Rust also reads forms Python refuses (none relevant here) and refuses none Python reads.
    if t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) {
        t.parse::<f64>().ok()
    } else {
        None
    }
}

fn is_int(x: f64) -> bool {
    x.is_finite() && (x - x.round()).abs() <= 1e-7
}

/// Removes thousands separators (`1,000` → `1000`) but not tuple commas.
fn strip_thousands(s: &str) -> String {
    static COMMAS: OnceLock<Regex> = OnceLock::new();
    let pattern = re(&COMMAS, r"(\d)(,)(\d\d\d)($|\D)");
    let mut s = s.to_string();
    loop {
        let next = pattern.replace_all(&s, "${1}${3}${4}").into_owned();
        if next == s {
            return next;
        }
        s = next;
    }
}

fn str_is_int(s: &str) -> bool {
    python_float(&strip_thousands(s)).is_some_and(is_int)
}

fn str_to_int(s: &str) -> Option<String> {
    // Python's int() truncates toward zero, and has no negative zero.
    let x = python_float(&s.replace(',', ""))?.trunc();
    Some(if x == 0.0 { "0".to_string() } else { format!("{x:.0}") })
}

fn is_frac(s: &str) -> bool {
    static FRAC: OnceLock<Regex> = OnceLock::new();
    re(&FRAC, r"^-?[0-9]+.?/0*[1-9][0-9]*.?$").is_match(s)
}

/// Normalises as PRM800K's grader does.
pub fn prm_normalize(expr: &str) -> String {
    let mut e = strip_text_wrapper(expr).unwrap_or_else(|| expr.to_string());
    e = e.replace("\\%", "%").replace("\\$", "$").replace(['$', '%'], "");
    e = e.replace(" or ", " , ").replace(" and ", " , ");
    e = e.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12");
    static UNIT_PATTERNS: OnceLock<Vec<Regex>> = OnceLock::new();
    let units = UNIT_PATTERNS.get_or_init(|| {
        UNITS.iter().map(|u| Regex::new(&format!(r"{u}(es)?(s)? *(\^[0-9]+)?")).expect("a valid pattern")).collect()
    });
    for pattern in units {
        e = pattern.replace_all(&e, "").into_owned();
    }
    static CIRC: OnceLock<Regex> = OnceLock::new();
    e = re(&CIRC, r"\^ *\\circ").replace_all(&e, "").into_owned();
    if e.len() >= 2 && e.starts_with('{') && e.ends_with('}') {
        e = e[1..e.len() - 1].to_string();
    }
    static THIN: OnceLock<Regex> = OnceLock::new();
    e = re(&THIN, r",\\! *").replace_all(&e, "").into_owned();
    if let Some(x) = python_float(&e).filter(|x| is_int(*x)) {
        e = format!("{:.0}", x.round());
        if e == "-0" {
            e = "0".into();
        }
    }
    if e.contains('\\') {
        e = latex_to_text(&e.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac").replace("\\frac", " \\frac"));
        e = e.replace('√', "sqrt").replace('π', "pi").replace('∞', "inf").replace('∪', "U").replace(['·', '×'], "*");
        e = e.trim().to_string();
    }
    static MINUS: OnceLock<Regex> = OnceLock::new();
    e = re(&MINUS, r"- *").replace_all(&e, "-").into_owned();
    static MIXED: OnceLock<Regex> = OnceLock::new();
    // Python's re.sub does not see its own replacements: "1 2 3" becomes "1+2 3".
    e = re(&MIXED, r"([0-9]) +([0-9])").replace_all(&e, "${1}+${2}").into_owned();
    e = e.replace(' ', "").replace(['{', '}'], "").to_lowercase();
    if str_is_int(&e) {
        if let Some(i) = str_to_int(&e) {
            e = i;
        }
    }
    e
}

/// LaTeX to plain text, as pylatexenc's `LatexNodes2Text` renders what answers hold: `\frac{a}{b}`
/// → `a/b`, `\sqrt{x}` → `√(x)`, `\text{…}` and other font macros → their text, symbols to their
/// characters, `\left`/`\right` dropped, groups to their content.
pub fn latex_to_text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    render(&chars, &mut pos, false)
}

/// Renders until the end, or until the `}` that closes the group when `in_group`.
fn render(c: &[char], pos: &mut usize, in_group: bool) -> String {
    let mut out = String::new();
    while *pos < c.len() {
        let ch = c[*pos];
        match ch {
            '}' if in_group => {
                *pos += 1;
                return out;
            }
            '{' => {
                *pos += 1;
                out.push_str(&render(c, pos, true));
            }
            '\\' => out.push_str(&macro_text(c, pos)),
            _ => {
                out.push(ch);
                *pos += 1;
            }
        }
    }
    out
}

/// One argument of a macro: a group, a macro, or a single character (spaces before it skipped).
fn argument(c: &[char], pos: &mut usize) -> String {
    while *pos < c.len() && c[*pos].is_whitespace() {
        *pos += 1;
    }
    match c.get(*pos) {
        Some('{') => {
            *pos += 1;
            render(c, pos, true)
        }
        Some('\\') => macro_text(c, pos),
        Some(&ch) => {
            *pos += 1;
            ch.to_string()
        }
        None => String::new(),
    }
}

fn macro_text(c: &[char], pos: &mut usize) -> String {
    *pos += 1; // the backslash
    let start = *pos;
    while *pos < c.len() && c[*pos].is_ascii_alphabetic() {
        *pos += 1;
    }
    if *pos == start {
        // A one-character macro: \%, \$, \{, \}, \,, \!, "\ ".
        let Some(&ch) = c.get(*pos) else { return String::new() };
        *pos += 1;
        return match ch {
            ',' | ';' | ':' | ' ' => " ".into(),
            '!' => String::new(),
            other => other.to_string(),
        };
    }
    let name: String = c[start..*pos].iter().collect();
    // Spaces after a macro name belong to it.
    while *pos < c.len() && c[*pos].is_whitespace() {
        *pos += 1;
    }
    match name.as_str() {
        "frac" => {
            let (a, b) = (argument(c, pos), argument(c, pos));
            format!("{a}/{b}")
        }
        "sqrt" => {
            if c.get(*pos) == Some(&'[') {
                while *pos < c.len() && c[*pos] != ']' {
                    *pos += 1;
                }
                *pos += 1;
            }
            format!("√({})", argument(c, pos))
        }
        "text" | "mathrm" | "textrm" | "textbf" | "mathbf" | "mathit" | "textit" | "operatorname" | "boxed" | "mbox" => {
            argument(c, pos)
        }
        "left" | "right" | "displaystyle" | "quad" | "qquad" => String::new(),
        "pi" => "π".into(),
        "cdot" => "·".into(),
        "times" => "×".into(),
        "infty" => "∞".into(),
        "cup" => "∪".into(),
        "circ" => "∘".into(),
        "le" | "leq" => "≤".into(),
        "ge" | "geq" => "≥".into(),
        "ne" | "neq" => "≠".into(),
        "pm" => "±".into(),
        "div" => "÷".into(),
        "alpha" => "α".into(),
        "beta" => "β".into(),
        "theta" => "θ".into(),
        "degree" => "°".into(),
        _ => String::new(),
    }
}

/// A tuple or interval's elements (`(1,2)` → `1`, `2`), thousands separators removed first.
fn split_tuple(expr: &str) -> Vec<String> {
    let e = strip_thousands(expr);
    if e.is_empty() {
        return Vec::new();
    }
    let brackets = "()[]";
    let chars: Vec<char> = e.chars().collect();
    if chars.len() > 2
        && brackets.contains(chars[0])
        && brackets.contains(chars[chars.len() - 1])
        && !chars[1..chars.len() - 1].iter().any(|c| brackets.contains(*c))
    {
        let inner: String = chars[1..chars.len() - 1].iter().collect();
        inner.split(',').map(|x| x.trim().to_string()).collect()
    } else {
        vec![e]
    }
}

// ---------------------------------------------------------------------------------------------
// Equality in value, where the reference asks sympy whether `(gt) - (given)` simplifies to 0.

/// Whether the reference would try sympy on this difference at all.
fn should_allow_eval(expr: &str) -> bool {
    let letters: std::collections::BTreeSet<char> =
        expr.replace("sqrt", "").replace("frac", "").chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() > 2 || expr.contains("^{") || expr.contains("^(") {
        return false;
    }
    static TWICE: OnceLock<Regex> = OnceLock::new();
    static LONG: OnceLock<Regex> = OnceLock::new();
    !(re(&TWICE, r"\^[0-9]+\^").is_match(expr) || re(&LONG, r"\^[0-9][0-9]+").is_match(expr))
}

fn equal_in_value(gt: &str, given: &str) -> bool {
    let diff = format!("({gt})-({given})");
    if !should_allow_eval(&diff) {
        return false;
    }
    let Some(expr) = Parser::parse(&diff) else { return false };
    let mut vars: Vec<String> = Vec::new();
    expr.variables(&mut vars);
    // Identity at several points (numbers need one): a non-zero difference is non-zero almost
    // everywhere, so agreement at every point means the difference is 0 as sympy would find.
    let points: &[f64] = if vars.is_empty() { &[0.0] } else { &[0.618_034, 1.303_577, 2.502_907, -0.577_216, 3.359_886] };
    points.iter().enumerate().all(|(k, &p)| {
        let values: Vec<(String, f64)> =
            vars.iter().enumerate().map(|(i, v)| (v.clone(), p + i as f64 * 0.371 + k as f64 * 0.013)).collect();
        match expr.eval(&values) {
            Some(d) if d.is_finite() => {
                let scale = expr.scale(&values).max(1.0);
                d.abs() <= 1e-12 * scale
            }
            _ => false,
        }
    })
}

/// An arithmetic expression as the reference's sympy parser reads the normalised strings:
/// numbers, at most two one-letter unknowns (`xy` is x·y), `pi`, `sqrt(…)`, `+ - * / ^` and
/// implicit multiplication.
#[derive(Debug, Clone)]
enum Expr {
    Num(f64),
    Var(String),
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
    Sqrt(Box<Expr>),
}

impl Expr {
    fn variables(&self, out: &mut Vec<String>) {
        match self {
            Expr::Var(v) if !out.contains(v) => out.push(v.clone()),
            Expr::Neg(a) | Expr::Sqrt(a) => a.variables(out),
            Expr::Bin(_, a, b) => {
                a.variables(out);
                b.variables(out);
            }
            _ => {}
        }
    }

    fn eval(&self, vars: &[(String, f64)]) -> Option<f64> {
        Some(match self {
            Expr::Num(x) => *x,
            Expr::Var(v) => vars.iter().find(|(n, _)| n == v)?.1,
            Expr::Neg(a) => -a.eval(vars)?,
            Expr::Sqrt(a) => a.eval(vars)?.sqrt(),
            Expr::Bin(op, a, b) => {
                let (x, y) = (a.eval(vars)?, b.eval(vars)?);
                match op {
                    '+' => x + y,
                    '-' => x - y,
                    '*' => x * y,
                    '/' => x / y,
                    _ => x.powf(y),
                }
            }
        })
    }

    /// The largest magnitude met while evaluating: the rounding error of the difference scales with it.
    fn scale(&self, vars: &[(String, f64)]) -> f64 {
        let here = self.eval(vars).map_or(0.0, f64::abs);
        let below = match self {
            Expr::Neg(a) | Expr::Sqrt(a) => a.scale(vars),
            Expr::Bin(_, a, b) => a.scale(vars).max(b.scale(vars)),
            _ => 0.0,
        };
        here.max(below)
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Name(String),
    Op(char),
    Open,
    Close,
}

impl Parser {
    fn parse(s: &str) -> Option<Expr> {
        let tokens = tokenize(&s.replace("**", "^"))?;
        let mut p = Parser { tokens, pos: 0 };
        let e = p.sum()?;
        (p.pos == p.tokens.len()).then_some(e)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn sum(&mut self) -> Option<Expr> {
        let mut left = self.product()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.product()?));
        }
        Some(left)
    }

    fn product(&mut self) -> Option<Expr> {
        let mut left = self.unary()?;
        loop {
            match self.peek().cloned() {
                Some(Token::Op(op @ ('*' | '/'))) => {
                    self.pos += 1;
                    left = Expr::Bin(op, Box::new(left), Box::new(self.unary()?));
                }
                // Juxtaposition multiplies: 2x, 2(3), x sqrt(2).
                Some(Token::Num(_) | Token::Name(_) | Token::Open) => {
                    left = Expr::Bin('*', Box::new(left), Box::new(self.power()?));
                }
                _ => return Some(left),
            }
        }
    }

    fn unary(&mut self) -> Option<Expr> {
        match self.peek() {
            Some(Token::Op('-')) => {
                self.pos += 1;
                Some(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Token::Op('+')) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Option<Expr> {
        let base = self.atom()?;
        if self.peek() == Some(&Token::Op('^')) {
            self.pos += 1;
            // Right-associative, and binds tighter than a leading minus of its base.
            let exp = self.unary()?;
            return Some(Expr::Bin('^', Box::new(base), Box::new(exp)));
        }
        Some(base)
    }

    fn atom(&mut self) -> Option<Expr> {
        let t = self.peek()?.clone();
        self.pos += 1;
        match t {
            Token::Num(x) => Some(Expr::Num(x)),
            Token::Open => {
                let e = self.sum()?;
                (self.peek() == Some(&Token::Close)).then(|| self.pos += 1)?;
                Some(e)
            }
            Token::Name(n) if n == "sqrt" => {
                let arg = self.atom()?;
                Some(Expr::Sqrt(Box::new(arg)))
            }
            Token::Name(n) if n == "pi" => Some(Expr::Num(std::f64::consts::PI)),
            Token::Name(n) => Some(Expr::Var(n)),
            _ => None,
        }
    }
}

fn tokenize(s: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Token::Num(text.parse().ok()?));
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // Known names stay whole; any other run of letters is a product of one-letter unknowns.
            let mut rest = word.as_str();
            while !rest.is_empty() {
                if let Some(r) = rest.strip_prefix("sqrt") {
                    out.push(Token::Name("sqrt".into()));
                    rest = r;
                } else if let Some(r) = rest.strip_prefix("pi") {
                    out.push(Token::Name("pi".into()));
                    rest = r;
                } else {
                    let mut it = rest.chars();
                    let one = it.next()?;
                    out.push(Token::Name(one.to_string()));
                    rest = it.as_str();
                }
            }
        } else {
            out.push(match c {
                '(' | '[' => Token::Open,
                ')' | ']' => Token::Close,
                '+' | '-' | '*' | '/' | '^' => Token::Op(c),
                _ => return None,
            });
            i += 1;
        }
    }
    Some(out)
}
