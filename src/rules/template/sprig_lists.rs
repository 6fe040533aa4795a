//! Sprig v3.3.0's list and dict functions (list.go, dict.go), with its panics as errors.
//!
//! Go's map iteration is random, so `keys` and `values` come out in an arbitrary order
//! there; here they come sorted by key, one of the orders Go may produce.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::funcs::Fail;
use super::sprig::{check_items, strval, to_int64};
use super::value::{List, Map, Type, Value};
use super::Limits;

type R = Result<Value, Fail>;

const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

/// The elements of a slice argument, or sprig's error for any other kind.
fn elems(v: &Value, what: impl FnOnce(&str) -> String) -> Result<Vec<Value>, Fail> {
    match v {
        Value::List(l) => Ok(l.items.borrow().clone()),
        Value::Nil | Value::Invalid => Err(Fail::go(NIL_DEREF)),
        v => Err(Fail::go(what(v.kind().name()))),
    }
}

fn any_list(items: Vec<Value>) -> Value {
    Value::list(items)
}

fn nil_any_list() -> Value {
    Value::List(Rc::new(List::new(Type::slice(Type::Any), Vec::new(), true)))
}

fn dict_of(v: &Value) -> Option<&Rc<Map>> {
    match v {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

pub(crate) fn dict(lim: &Limits, a: Vec<Value>) -> R {
    let mut m = BTreeMap::new();
    let mut k = 0;
    while k < a.len() {
        let key = strval(&a[k], lim)?;
        let v = a.get(k + 1).cloned().unwrap_or_else(|| Value::str(""));
        m.insert(key, v);
        k += 2;
    }
    Ok(Value::dict(m))
}

pub(crate) fn get(_: &Limits, a: Vec<Value>) -> R {
    let key = a[1].as_str().unwrap_or_default();
    Ok(dict_of(&a[0])
        .and_then(|m| m.entries.borrow().get(key).cloned())
        .unwrap_or_else(|| Value::str("")))
}

pub(crate) fn set(_: &Limits, a: Vec<Value>) -> R {
    let Some(m) = dict_of(&a[0]) else {
        return Ok(a[0].clone());
    };
    if m.is_nil {
        return Err(Fail::go("assignment to entry in nil map"));
    }
    let key = a[1].as_str().unwrap_or_default().to_string();
    m.entries.borrow_mut().insert(key, a[2].clone());
    Ok(a[0].clone())
}

pub(crate) fn unset(_: &Limits, a: Vec<Value>) -> R {
    if let Some(m) = dict_of(&a[0]) {
        m.entries
            .borrow_mut()
            .remove(a[1].as_str().unwrap_or_default());
    }
    Ok(a[0].clone())
}

pub(crate) fn has_key(_: &Limits, a: Vec<Value>) -> R {
    let key = a[1].as_str().unwrap_or_default();
    Ok(Value::Bool(
        dict_of(&a[0]).is_some_and(|m| m.entries.borrow().contains_key(key)),
    ))
}

pub(crate) fn pluck(_: &Limits, a: Vec<Value>) -> R {
    let key = a[0].as_str().unwrap_or_default();
    let out = a[1..]
        .iter()
        .filter_map(|d| dict_of(d).and_then(|m| m.entries.borrow().get(key).cloned()))
        .collect();
    Ok(any_list(out))
}

pub(crate) fn keys(lim: &Limits, a: Vec<Value>) -> R {
    let mut out = Vec::new();
    for d in &a {
        if let Some(m) = dict_of(d) {
            out.extend(m.entries.borrow().keys().cloned());
        }
    }
    check_items(lim, out.len() as u128)?;
    Ok(Value::strings(out))
}

pub(crate) fn pick(_: &Limits, a: Vec<Value>) -> R {
    let mut out = BTreeMap::new();
    if let Some(m) = dict_of(&a[0]) {
        let entries = m.entries.borrow();
        for k in a[1..].iter().filter_map(|k| k.as_str()) {
            if let Some(v) = entries.get(k) {
                out.insert(k.to_string(), v.clone());
            }
        }
    }
    Ok(Value::dict(out))
}

pub(crate) fn omit(_: &Limits, a: Vec<Value>) -> R {
    let drop: Vec<&str> = a[1..].iter().filter_map(|k| k.as_str()).collect();
    let out = dict_of(&a[0])
        .map(|m| {
            m.entries
                .borrow()
                .iter()
                .filter(|(k, _)| !drop.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Value::dict(out))
}

pub(crate) fn values(_: &Limits, a: Vec<Value>) -> R {
    let out = dict_of(&a[0])
        .map(|m| m.entries.borrow().values().cloned().collect())
        .unwrap_or_default();
    Ok(any_list(out))
}

fn assert_dict(v: &Value) -> Result<Rc<Map>, Fail> {
    match v {
        Value::Map(m) if m.ty == Type::map(Type::Any) => Ok(m.clone()),
        Value::Nil | Value::Invalid => Err(Fail::go(
            "interface conversion: interface {} is nil, not map[string]interface {}",
        )),
        v => Err(Fail::go(format!(
            "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
            v.type_name()
        ))),
    }
}

pub(crate) fn dig(_: &Limits, a: Vec<Value>) -> R {
    if a.len() < 3 {
        return Err(Fail::go("dig needs at least three arguments"));
    }
    let mut m = assert_dict(&a[a.len() - 1])?;
    let def = a[a.len() - 2].clone();
    let mut ks = Vec::new();
    for k in &a[..a.len() - 2] {
        match k {
            Value::Str(s) => ks.push(s.to_string()),
            v => {
                return Err(Fail::go(format!(
                    "interface conversion: interface {{}} is {}, not string",
                    if matches!(v, Value::Nil | Value::Invalid) {
                        "nil".into()
                    } else {
                        v.type_name()
                    }
                )))
            }
        }
    }
    for (n, k) in ks.iter().enumerate() {
        let step = m.entries.borrow().get(k).cloned();
        let Some(step) = step else { return Ok(def) };
        if n == ks.len() - 1 {
            return Ok(step);
        }
        m = assert_dict(&step)?;
    }
    Ok(def)
}

/// copystructure's deep copy: new maps and slices all the way down.
pub(crate) fn deep_copy(v: &Value) -> Value {
    match v {
        Value::List(l) => {
            let items = l.items.borrow().iter().map(deep_copy).collect();
            Value::List(Rc::new(List::new(l.ty.clone(), items, l.is_nil)))
        }
        Value::Map(m) => {
            let entries = m
                .entries
                .borrow()
                .iter()
                .map(|(k, v)| (k.clone(), deep_copy(v)))
                .collect();
            Value::Map(Rc::new(Map::new(m.ty.clone(), entries, m.is_nil)))
        }
        v => v.clone(),
    }
}

pub(crate) fn push(lim: &Limits, a: Vec<Value>) -> R {
    let mut l = elems(&a[0], |k| format!("Cannot push on type {k}"))?;
    check_items(lim, l.len() as u128 + 1)?;
    l.push(a[1].clone());
    Ok(any_list(l))
}

pub(crate) fn prepend(lim: &Limits, a: Vec<Value>) -> R {
    let l = elems(&a[0], |k| format!("Cannot prepend on type {k}"))?;
    check_items(lim, l.len() as u128 + 1)?;
    let mut out = vec![a[1].clone()];
    out.extend(l);
    Ok(any_list(out))
}

pub(crate) fn first(_: &Limits, a: Vec<Value>) -> R {
    let l = elems(&a[0], |k| format!("Cannot find first on type {k}"))?;
    Ok(l.into_iter().next().unwrap_or(Value::Nil))
}

pub(crate) fn last(_: &Limits, a: Vec<Value>) -> R {
    let l = elems(&a[0], |k| format!("Cannot find last on type {k}"))?;
    Ok(l.into_iter().next_back().unwrap_or(Value::Nil))
}

pub(crate) fn rest(_: &Limits, a: Vec<Value>) -> R {
    let l = elems(&a[0], |k| format!("Cannot find rest on type {k}"))?;
    if l.is_empty() {
        return Ok(nil_any_list());
    }
    Ok(any_list(l[1..].to_vec()))
}

pub(crate) fn initial(_: &Limits, a: Vec<Value>) -> R {
    let l = elems(&a[0], |k| format!("Cannot find initial on type {k}"))?;
    if l.is_empty() {
        return Ok(nil_any_list());
    }
    Ok(any_list(l[..l.len() - 1].to_vec()))
}

pub(crate) fn reverse(_: &Limits, a: Vec<Value>) -> R {
    let mut l = elems(&a[0], |k| format!("Cannot find reverse on type {k}"))?;
    l.reverse();
    Ok(any_list(l))
}

fn in_list(hay: &[Value], needle: &Value) -> bool {
    hay.iter().any(|h| h.deep_equal(needle))
}

pub(crate) fn uniq(_: &Limits, a: Vec<Value>) -> R {
    let l = elems(&a[0], |k| format!("Cannot find uniq on type {k}"))?;
    let mut out: Vec<Value> = Vec::new();
    for v in l {
        if !in_list(&out, &v) {
            out.push(v);
        }
    }
    Ok(any_list(out))
}

pub(crate) fn without(_: &Limits, a: Vec<Value>) -> R {
    let l = elems(&a[0], |k| format!("Cannot find without on type {k}"))?;
    let omit = &a[1..];
    Ok(any_list(
        l.into_iter().filter(|v| !in_list(omit, v)).collect(),
    ))
}

pub(crate) fn has(_: &Limits, a: Vec<Value>) -> R {
    if matches!(a[1], Value::Nil | Value::Invalid) {
        return Ok(Value::Bool(false));
    }
    let l = elems(&a[1], |k| format!("Cannot find has on type {k}"))?;
    Ok(Value::Bool(in_list(&l, &a[0])))
}

pub(crate) fn compact(_: &Limits, a: Vec<Value>) -> R {
    let l = elems(&a[0], |k| format!("Cannot compact on type {k}"))?;
    Ok(any_list(
        l.into_iter().filter(|v| !super::sprig::empty(v)).collect(),
    ))
}

pub(crate) fn slice(_: &Limits, a: Vec<Value>) -> R {
    let (ty, l) = match &a[0] {
        Value::List(l) => (l.ty.clone(), l.items.borrow().clone()),
        Value::Nil | Value::Invalid => return Err(Fail::go(NIL_DEREF)),
        v => {
            return Err(Fail::go(format!(
                "list should be type of slice or array but {}",
                v.kind().name()
            )))
        }
    };
    if l.is_empty() {
        return Ok(Value::Nil);
    }
    let start = a.get(1).map(to_int64).unwrap_or(0);
    let end = a.get(2).map(to_int64).unwrap_or(l.len() as i64);
    if start < 0 || end < start || end > l.len() as i64 {
        return Err(Fail::go("reflect.Value.Slice: slice index out of bounds"));
    }
    Ok(Value::typed_list(
        ty,
        l[start as usize..end as usize].to_vec(),
    ))
}

pub(crate) fn concat(lim: &Limits, a: Vec<Value>) -> R {
    let mut out = Vec::new();
    for v in &a {
        match v {
            Value::List(l) => out.extend(l.items.borrow().iter().cloned()),
            Value::Nil | Value::Invalid => return Err(Fail::go(NIL_DEREF)),
            v => {
                return Err(Fail::go(format!(
                    "Cannot concat type {} as list",
                    v.kind().name()
                )))
            }
        }
        check_items(lim, out.len() as u128)?;
    }
    if out.is_empty() {
        return Ok(nil_any_list());
    }
    Ok(any_list(out))
}

pub(crate) fn chunk(lim: &Limits, a: Vec<Value>) -> R {
    let size = match a[0] {
        Value::Int(i) => i,
        _ => 0,
    };
    let l = elems(&a[1], |k| format!("Cannot chunk type {k}"))?;
    if l.is_empty() {
        return Ok(Value::typed_list(
            Type::slice(Type::slice(Type::Any)),
            Vec::new(),
        ));
    }
    if size <= 0 {
        return Err(Fail::go("runtime error: makeslice: len out of range"));
    }
    check_items(lim, l.len() as u128)?;
    let chunks = l
        .chunks(size as usize)
        .map(|c| any_list(c.to_vec()))
        .collect();
    Ok(Value::typed_list(
        Type::slice(Type::slice(Type::Any)),
        chunks,
    ))
}
