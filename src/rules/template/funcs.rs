//! The function map NFD gives its templates: text/template's builtins plus sprig v3.3.0's
//! TxtFuncMap minus env, expandenv and getHostByName. Which names exist, which image-compat
//! implements, and the Go signature of each (the executor converts arguments by it).

use super::value::{Type, Value};
use super::{sprig, sprig_lists, LimitKind, Limits};

/// A parameter's Go type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PT {
    /// `reflect.Value` (builtins): anything, untouched.
    Reflect,
    Any,
    Bool,
    Int,
    Float,
    Str,
    /// `map[string]interface {}`.
    Dict,
}

impl PT {
    pub fn ty(self) -> Option<Type> {
        Some(match self {
            PT::Reflect => return None,
            PT::Any => Type::Any,
            PT::Bool => Type::Bool,
            PT::Int => Type::Int,
            PT::Float => Type::Float64,
            PT::Str => Type::String,
            PT::Dict => Type::map(Type::Any),
        })
    }
}

/// Why a function call failed.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The Go error (or recovered panic) text; the executor adds "error calling NAME: ".
    Go(String),
    Limit(LimitKind, String),
    Unsupported(String),
}

impl Fail {
    pub fn go(s: impl Into<String>) -> Fail {
        Fail::Go(s.into())
    }
}

pub(crate) type FnImpl = fn(&Limits, Vec<Value>) -> Result<Value, Fail>;

#[derive(Clone, Copy)]
pub(crate) struct Func {
    pub params: &'static [PT],
    pub variadic: Option<PT>,
    pub call: FnImpl,
    pub builtin: bool,
}

pub(crate) enum FuncStatus {
    Defined,
    Undefined,
    Unsupported(&'static str),
}

/// Whether `name` may appear in a template, as Go's parser decides plus image-compat's
/// refusals (sprig functions it does not implement).
pub(crate) fn status(name: &str) -> FuncStatus {
    if lookup(name).is_some() {
        return FuncStatus::Defined;
    }
    if name == "call" {
        return FuncStatus::Unsupported("no function values exist in NFD's data");
    }
    match unsupported(name) {
        Some(why) => FuncStatus::Unsupported(why),
        None => FuncStatus::Undefined,
    }
}

/// Sprig v3.3.0 functions that image-compat refuses, with the reason.
fn unsupported(name: &str) -> Option<&'static str> {
    const NONHERMETIC: &str = "not hermetic: its result depends on the clock or randomness";
    Some(match name {
        "now" | "date" | "date_in_zone" | "date_modify" | "dateInZone" | "dateModify"
        | "htmlDate" | "htmlDateInZone" | "randAlphaNum" | "randAlpha" | "randAscii"
        | "randNumeric" | "randBytes" | "randInt" | "uuidv4" | "shuffle" => NONHERMETIC,
        "ago" | "duration" | "durationRound" | "must_date_modify" | "mustDateModify"
        | "mustToDate" | "toDate" | "unixEpoch" => "date and time functions are not implemented",
        "bcrypt"
        | "htpasswd"
        | "genPrivateKey"
        | "derivePassword"
        | "buildCustomCert"
        | "genCA"
        | "genCAWithKey"
        | "genSelfSignedCert"
        | "genSelfSignedCertWithKey"
        | "genSignedCert"
        | "genSignedCertWithKey"
        | "encryptAES"
        | "decryptAES"
        | "sha1sum"
        | "sha256sum"
        | "sha512sum"
        | "adler32sum" => "cryptographic functions are not implemented",
        "semver" | "semverCompare" => "semantic version functions are not implemented",
        "urlParse" | "urlJoin" => "URL functions are not implemented",
        "add1f" | "addf" | "subf" | "divf" | "mulf" => {
            "decimal float arithmetic is not implemented"
        }
        "abbrev" | "abbrevboth" | "initials" | "swapcase" | "snakecase" | "camelcase"
        | "kebabcase" | "wrap" | "wrapWith" => "this string function is not implemented",
        "merge" | "mergeOverwrite" | "mustMerge" | "mustMergeOverwrite" => {
            "dict merging is not implemented"
        }
        "base" | "dir" | "clean" | "ext" | "isAbs" | "osBase" | "osClean" | "osDir" | "osExt"
        | "osIsAbs" => "path functions are not implemented",
        _ => return None,
    })
}

macro_rules! f {
    ([$($p:ident),*], $v:expr, $call:expr) => {
        Func { params: &[$(PT::$p),*], variadic: $v, call: $call, builtin: false }
    };
}

macro_rules! b {
    ([$($p:ident),*], $v:expr, $call:expr) => {
        Func { params: &[$(PT::$p),*], variadic: $v, call: $call, builtin: true }
    };
}

const V_ANY: Option<PT> = Some(PT::Any);
const V_REF: Option<PT> = Some(PT::Reflect);

/// The function called `name`, sprig first (it shadows the builtin `slice`) as Go's
/// `findFunction` looks in the template's map before the builtins.
pub(crate) fn lookup(name: &str) -> Option<Func> {
    sprig_func(name).or_else(|| builtin(name))
}

fn builtin(name: &str) -> Option<Func> {
    use super::builtins as bi;
    Some(match name {
        // and/or are special-cased by the executor (short-circuit); the call never runs.
        "and" | "or" => b!([Reflect], V_REF, |_, _| Ok(Value::Invalid)),
        "not" => b!([Reflect], None, |_, a| Ok(Value::Bool(!a[0].truth()))),
        "len" => b!([Reflect], None, bi::len),
        "index" => b!([Reflect], V_REF, bi::index),
        "print" => b!([], V_ANY, bi::print),
        "printf" => b!([Str], V_ANY, bi::printf),
        "println" => b!([], V_ANY, bi::println),
        "html" => b!([], V_ANY, bi::html),
        "js" => b!([], V_ANY, bi::js),
        "urlquery" => b!([], V_ANY, bi::urlquery),
        "eq" => b!([Reflect], V_REF, bi::eq),
        "ne" => b!([Reflect, Reflect], None, bi::ne),
        "lt" => b!([Reflect, Reflect], None, bi::lt),
        "le" => b!([Reflect, Reflect], None, bi::le),
        "gt" => b!([Reflect, Reflect], None, bi::gt),
        "ge" => b!([Reflect, Reflect], None, bi::ge),
        _ => return None,
    })
}

fn sprig_func(name: &str) -> Option<Func> {
    use sprig as s;
    use sprig_lists as l;
    const V_INT: Option<PT> = Some(PT::Int);
    const V_DICT: Option<PT> = Some(PT::Dict);
    const V_STR: Option<PT> = Some(PT::Str);
    const V_FLOAT: Option<PT> = Some(PT::Float);
    Some(match name {
        "hello" => f!([], None, |_, _| Ok(Value::str("Hello!"))),
        // Strings.
        "trunc" => f!([Int, Str], None, s::trunc),
        "trim" => f!([Str], None, s::trim),
        "upper" => f!([Str], None, s::upper),
        "lower" => f!([Str], None, s::lower),
        "title" => f!([Str], None, s::title),
        "untitle" => f!([Str], None, s::untitle),
        "substr" => f!([Int, Int, Str], None, s::substr),
        "repeat" => f!([Int, Str], None, s::repeat),
        "trimall" | "trimAll" => f!([Str, Str], None, s::trim_all),
        "trimSuffix" => f!([Str, Str], None, s::trim_suffix),
        "trimPrefix" => f!([Str, Str], None, s::trim_prefix),
        "nospace" => f!([Str], None, s::nospace),
        "contains" => f!([Str, Str], None, s::contains),
        "hasPrefix" => f!([Str, Str], None, s::has_prefix),
        "hasSuffix" => f!([Str, Str], None, s::has_suffix),
        "quote" => f!([], V_ANY, s::quote),
        "squote" => f!([], V_ANY, s::squote),
        "cat" => f!([], V_ANY, s::cat),
        "indent" => f!([Int, Str], None, s::indent),
        "nindent" => f!([Int, Str], None, s::nindent),
        "replace" => f!([Str, Str, Str], None, s::replace),
        "plural" => f!([Str, Str, Int], None, s::plural),
        "toString" => f!([Any], None, s::to_string),
        "b64enc" => f!([Str], None, s::b64enc),
        "b64dec" => f!([Str], None, s::b64dec),
        "b32enc" => f!([Str], None, s::b32enc),
        "b32dec" => f!([Str], None, s::b32dec),
        // Conversions and arithmetic.
        "atoi" => f!([Str], None, s::atoi),
        "int64" => f!([Any], None, |_, a| Ok(Value::Int64(s::to_int64(&a[0])))),
        "int" => f!([Any], None, |_, a| Ok(Value::Int(s::to_int64(&a[0])))),
        "float64" => f!([Any], None, |_, a| Ok(Value::Float(s::to_float64(&a[0])))),
        "toDecimal" => f!([Any], None, s::to_decimal),
        "seq" => f!([], V_INT, s::seq),
        "until" => f!([Int], None, s::until),
        "untilStep" => f!([Int, Int, Int], None, s::until_step),
        "add1" => f!([Any], None, |_, a| Ok(Value::Int64(
            s::to_int64(&a[0]).wrapping_add(1)
        ))),
        "add" => f!([], V_ANY, s::add),
        "sub" => f!([Any, Any], None, |_, a| {
            Ok(Value::Int64(
                s::to_int64(&a[0]).wrapping_sub(s::to_int64(&a[1])),
            ))
        }),
        "div" => f!([Any, Any], None, s::div),
        "mod" => f!([Any, Any], None, s::modulo),
        "mul" => f!([Any], V_ANY, s::mul),
        "biggest" | "max" => f!([Any], V_ANY, s::max),
        "min" => f!([Any], V_ANY, s::min),
        "maxf" => f!([Any], V_ANY, s::maxf),
        "minf" => f!([Any], V_ANY, s::minf),
        "ceil" => f!([Any], None, |_, a| Ok(Value::Float(
            s::to_float64(&a[0]).ceil()
        ))),
        "floor" => f!([Any], None, |_, a| Ok(Value::Float(
            s::to_float64(&a[0]).floor()
        ))),
        "round" => f!([Any, Int], V_FLOAT, s::round),
        // String slices.
        "split" => f!([Str, Str], None, s::split),
        "splitList" => f!([Str, Str], None, s::split_list),
        "splitn" => f!([Str, Int, Str], None, s::splitn),
        "toStrings" => f!([Any], None, |_, a| Ok(Value::strings(s::strslice(&a[0])))),
        "join" => f!([Str, Any], None, s::join),
        "sortAlpha" => f!([Any], None, s::sort_alpha),
        // Defaults and flow.
        "default" => f!([Any], V_ANY, s::dfault),
        "empty" => f!([Any], None, |_, a| Ok(Value::Bool(s::empty(&a[0])))),
        "coalesce" => f!([], V_ANY, s::coalesce),
        "all" => f!([], V_ANY, |_, a| Ok(Value::Bool(
            a.iter().all(|v| !s::empty(v))
        ))),
        "any" => f!([], V_ANY, |_, a| Ok(Value::Bool(
            a.iter().any(|v| !s::empty(v))
        ))),
        "ternary" => f!([Any, Any, Bool], None, |_, mut a| {
            let t = a[2].truth();
            Ok(if t {
                a.swap_remove(0)
            } else {
                a.swap_remove(1)
            })
        }),
        "fail" => f!([Str], None, |_, a| Err(Fail::go(
            a[0].as_str().unwrap_or_default()
        ))),
        "toJson" | "mustToJson" | "toRawJson" | "mustToRawJson" | "toPrettyJson"
        | "mustToPrettyJson" => return json_func(name),
        "fromJson" => f!([Str], None, s::from_json),
        "mustFromJson" => f!([Str], None, s::must_from_json),
        // Reflection.
        "typeOf" => f!([Any], None, |_, a| Ok(Value::string(a[0].type_name()))),
        "typeIs" => f!([Str, Any], None, |_, a| Ok(Value::Bool(
            a[0].as_str() == Some(&a[1].type_name())
        ))),
        "typeIsLike" => f!([Str, Any], None, |_, a| {
            let t = a[1].type_name();
            let want = a[0].as_str().unwrap_or_default();
            Ok(Value::Bool(want == t || format!("*{want}") == t))
        }),
        "kindOf" => f!([Any], None, |_, a| Ok(Value::str(
            a[0].clone().indirect().kind().name()
        ))),
        "kindIs" => f!([Str, Any], None, |_, a| {
            Ok(Value::Bool(
                a[0].as_str() == Some(a[1].clone().indirect().kind().name()),
            ))
        }),
        "deepEqual" => f!([Any, Any], None, |_, a| Ok(Value::Bool(
            a[0].deep_equal(&a[1])
        ))),
        // Lists and dicts.
        "tuple" | "list" => f!([], V_ANY, |_, a| Ok(Value::list(a))),
        "dict" => f!([], V_ANY, l::dict),
        "get" => f!([Dict, Str], None, l::get),
        "set" => f!([Dict, Str, Any], None, l::set),
        "unset" => f!([Dict, Str], None, l::unset),
        "hasKey" => f!([Dict, Str], None, l::has_key),
        "pluck" => f!([Str], V_DICT, l::pluck),
        "keys" => f!([], V_DICT, l::keys),
        "pick" => f!([Dict], V_STR, l::pick),
        "omit" => f!([Dict], V_STR, l::omit),
        "values" => f!([Dict], None, l::values),
        "dig" => f!([], V_ANY, l::dig),
        "deepCopy" | "mustDeepCopy" => f!([Any], None, |_, a| Ok(l::deep_copy(&a[0]))),
        "append" | "push" | "mustAppend" | "mustPush" => f!([Any, Any], None, l::push),
        "prepend" | "mustPrepend" => f!([Any, Any], None, l::prepend),
        "first" | "mustFirst" => f!([Any], None, l::first),
        "rest" | "mustRest" => f!([Any], None, l::rest),
        "last" | "mustLast" => f!([Any], None, l::last),
        "initial" | "mustInitial" => f!([Any], None, l::initial),
        "reverse" | "mustReverse" => f!([Any], None, l::reverse),
        "uniq" | "mustUniq" => f!([Any], None, l::uniq),
        "without" | "mustWithout" => f!([Any], V_ANY, l::without),
        "has" | "mustHas" => f!([Any, Any], None, l::has),
        "slice" | "mustSlice" => f!([Any], V_ANY, l::slice),
        "concat" => f!([], V_ANY, l::concat),
        "compact" | "mustCompact" => f!([Any], None, l::compact),
        "chunk" | "mustChunk" => f!([Int, Any], None, l::chunk),
        // Regular expressions.
        "regexMatch" => f!([Str, Str], None, super::sprig_regex::regex_match),
        "mustRegexMatch" => f!([Str, Str], None, super::sprig_regex::must_regex_match),
        "regexFindAll" | "mustRegexFindAll" => {
            f!([Str, Str, Int], None, super::sprig_regex::find_all)
        }
        "regexFind" | "mustRegexFind" => f!([Str, Str], None, super::sprig_regex::find),
        "regexReplaceAll" | "mustRegexReplaceAll" => {
            f!([Str, Str, Str], None, super::sprig_regex::replace_all)
        }
        "regexReplaceAllLiteral" | "mustRegexReplaceAllLiteral" => {
            f!(
                [Str, Str, Str],
                None,
                super::sprig_regex::replace_all_literal
            )
        }
        "regexSplit" | "mustRegexSplit" => f!([Str, Str, Int], None, super::sprig_regex::split),
        "regexQuoteMeta" => f!([Str], None, super::sprig_regex::quote_meta),
        _ => return None,
    })
}

fn json_func(name: &str) -> Option<Func> {
    use super::json;
    Some(match name {
        "toJson" => f!([Any], None, |l, a| Ok(Value::string(
            json::marshal(&a[0], false, false, l)?.unwrap_or_default()
        ))),
        "mustToJson" => f!([Any], None, |l, a| json::must(json::marshal(
            &a[0], false, false, l
        )?)),
        "toRawJson" | "mustToRawJson" => f!([Any], None, |l, a| json::must(json::marshal(
            &a[0], true, false, l
        )?)),
        "toPrettyJson" => f!([Any], None, |l, a| Ok(Value::string(
            json::marshal(&a[0], false, true, l)?.unwrap_or_default()
        ))),
        "mustToPrettyJson" => f!([Any], None, |l, a| json::must(json::marshal(
            &a[0], false, true, l
        )?)),
        _ => return None,
    })
}
