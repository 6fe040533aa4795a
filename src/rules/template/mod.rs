//! NFD's `varsTemplate`: Go text/template + sprig, executed over a rule's matched features.
//!
//! NFD v0.19.0 (pkg/apis/nfd/template) parses with
//! `template.New("").Funcs(sprig.TxtFuncMap() - {env, expandenv, getHostByName}).Option("missingkey=error")`
//! after a 64 KiB cap, executes over `matchedFeatures`, and reads `key=value` lines. This module
//! reproduces that: [`Template::parse`], [`Template::execute`] and [`expand_vars`].
//!
//! Supported: the whole text/template language of Go 1.26 (actions, trim markers, comments,
//! pipelines, variables, if/else if/with/else with/range with else, break/continue, range over
//! ints, define/template/block) with Go's printing, comparison and argument-type rules, its
//! builtins except `call`, and the sprig functions listed in `funcs.rs`.
//!
//! Deliberate differences from NFD, each an error rather than a different result:
//! - sprig functions image-compat does not implement are refused at parse time, among them the
//!   non-hermetic ones (`now`, `date`, `rand*`, `uuidv4`): a node's verdict must not depend on
//!   the clock or chance. So are `call`, complex constants, `%#v` and `%x` of floats.
//! - [`Limits`] bound output, steps, nesting and the size of what functions build; NFD bounds
//!   none of them (only the 64 KiB source).
//! - strings are UTF-8: a literal or a byte slice (`substr`, `trunc`) that is not valid UTF-8
//!   is an error where Go would carry the bytes.

mod builtins;
mod exec;
mod fmt;
mod funcs;
mod json;
mod lex;
mod node;
mod parse;
mod sprig;
mod sprig_lists;
mod sprig_regex;
mod uni;
mod value;

#[cfg(test)]
mod tests;

pub use value::{
    matched_element, matched_element_type, matched_features, Kind, List, Map, Type, Value,
};

/// NFD's `MaxTemplateSize`: bytes, and exactly this many is allowed.
pub const MAX_TEMPLATE_SIZE: usize = 64 * 1024;

/// image-compat's bounds on one execution (NFD has none). The defaults are far above what a
/// real spec needs and stop a hostile template in well under a second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes a template may write.
    pub max_output_bytes: usize,
    /// Nodes, commands, arguments, iterations and function calls (large results cost more).
    pub max_steps: u64,
    /// Nesting of control structures, parentheses and template calls, at parse and at run
    /// time, and of values being printed.
    pub max_depth: usize,
    /// Elements a function may create (`until`, `seq`, `splitList`, ...).
    pub max_list_len: usize,
    /// Bytes of a string a function may create (`repeat`, `printf`, `join`, ...).
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_output_bytes: 1 << 20,
            max_steps: 1_000_000,
            max_depth: 100,
            max_list_len: 100_000,
            max_string_bytes: 1 << 20,
        }
    }
}

/// Which of [`Limits`] was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    OutputBytes,
    Steps,
    Depth,
    ListLen,
    StringBytes,
}

impl LimitKind {
    /// The `Limits` field, as error messages name it.
    pub fn field(self) -> &'static str {
        match self {
            LimitKind::OutputBytes => "max_output_bytes",
            LimitKind::Steps => "max_steps",
            LimitKind::Depth => "max_depth",
            LimitKind::ListLen => "max_list_len",
            LimitKind::StringBytes => "max_string_bytes",
        }
    }
}

/// A template that could not be parsed, executed or read as variables. The messages are
/// Go's and NFD's texts, except for image-compat's own refusals and limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Source over [`MAX_TEMPLATE_SIZE`] (NFD's `ErrTemplateTooLarge`).
    #[error("template exceeds maximum allowed size: {size} bytes > {max} limit")]
    TooLarge { size: usize, max: usize },
    /// Go's parse error, e.g. `template: :1: function "foo" not defined`.
    #[error("{message}")]
    Parse { message: String },
    /// Go's execution error, e.g. `template: :1:6: executing "" at <.cpu.model>: map has no
    /// entry for key "cpu"`.
    #[error("{message}")]
    Exec { message: String },
    /// A construct or function image-compat refuses (NFD would accept it).
    #[error("{message}")]
    Unsupported { name: String, message: String },
    /// One of [`Limits`] was exceeded (NFD would go on).
    #[error("{message}")]
    Limit { limit: LimitKind, message: String },
    /// An output line without `=` (NFD's `ExpandMap`).
    #[error("missing value in expanded template line {}, (format must be '<key>=<value>')", uni::quote(.line))]
    MissingValue { line: String },
    /// NFD's wrapping of a parse-stage error: `failed to parse template: ...`.
    #[error("failed to parse template: {}", parse_wrap(.0))]
    FailedParse(Box<TemplateError>),
    /// NFD's wrapping of an execution-stage error: `failed to expand template: ...`.
    #[error("failed to expand template: {0}")]
    FailedExpand(Box<TemplateError>),
}

/// NFD's NewHelper adds "invalid template: " to parse errors but not to the size error.
fn parse_wrap(e: &TemplateError) -> String {
    match e {
        TemplateError::TooLarge { .. } => e.to_string(),
        e => format!("invalid template: {e}"),
    }
}

impl TemplateError {
    /// The error inside NFD's wrapping.
    pub fn root(&self) -> &TemplateError {
        match self {
            TemplateError::FailedParse(e) | TemplateError::FailedExpand(e) => e.root(),
            e => e,
        }
    }

    /// The limit that stopped the template, if one did.
    pub fn limit(&self) -> Option<LimitKind> {
        match self.root() {
            TemplateError::Limit { limit, .. } => Some(*limit),
            _ => None,
        }
    }
}

/// A parsed template, ready to execute many times.
#[derive(Debug)]
pub struct Template {
    source: String,
    trees: parse::TreeSet,
}

impl Template {
    /// Checks NFD's size cap, then parses as Go does, with the default nesting limit.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        Template::parse_with(source, &Limits::default())
    }

    /// [`Template::parse`] with `limits.max_depth` for nesting.
    pub fn parse_with(source: &str, limits: &Limits) -> Result<Template, TemplateError> {
        if source.len() > MAX_TEMPLATE_SIZE {
            return Err(TemplateError::TooLarge {
                size: source.len(),
                max: MAX_TEMPLATE_SIZE,
            });
        }
        let trees = parse::parse(source, limits)?;
        Ok(Template {
            source: source.to_string(),
            trees,
        })
    }

    /// Executes over `data` with `missingkey=error` and returns the output.
    pub fn execute(&self, data: &Value, limits: &Limits) -> Result<String, TemplateError> {
        exec::execute(&self.trees, &self.source, data, limits)
    }
}

/// NFD's `executeTemplate` + `ExpandMap`: parse, execute, and read `key=value` lines in
/// output order (a later duplicate replaces the earlier value in place of being appended).
pub fn expand_vars(
    source: &str,
    data: &Value,
    limits: &Limits,
) -> Result<Vec<(String, String)>, TemplateError> {
    let t = Template::parse_with(source, limits)
        .map_err(|e| TemplateError::FailedParse(Box::new(e)))?;
    let out = t
        .execute(data, limits)
        .map_err(|e| TemplateError::FailedExpand(Box::new(e)))?;
    parse_vars(&out).map_err(|e| TemplateError::FailedExpand(Box::new(e)))
}

/// `ExpandMap`'s line reading: split on "\n", trim (Go's TrimSpace), skip blank lines, split
/// at the first '='; key and value are not trimmed on their own.
pub fn parse_vars(expanded: &str) -> Result<Vec<(String, String)>, TemplateError> {
    let mut out: Vec<(String, String)> = Vec::new();
    // Linear in the number of lines (an output may hold a million): the position of each key.
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in expanded.split('\n') {
        let trimmed = item.trim_matches(uni::is_space);
        if trimmed.is_empty() {
            continue;
        }
        let Some((k, v)) = trimmed.split_once('=') else {
            return Err(TemplateError::MissingValue {
                line: trimmed.to_string(),
            });
        };
        match at.get(k) {
            Some(&i) => out[i].1 = v.to_string(),
            None => {
                at.insert(k.to_string(), out.len());
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    Ok(out)
}
