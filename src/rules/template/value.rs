//! Template values and their Go types: what `reflect.Value` carries in text/template.
//!
//! Go's template engine is strict about types (`repeat (add 1 2) "x"` fails because `add`
//! returns int64 and `repeat` wants int), so every value keeps the Go type it would have.
//! Maps and lists are shared by reference, as Go's are: sprig's `set` changes the dict that
//! a variable still holds.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A Go type, as far as templates over NFD data and sprig results need one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// `interface {}`.
    Any,
    Bool,
    Int,
    Int64,
    Uint8,
    Float64,
    String,
    /// `[]T`.
    Slice(Rc<Type>),
    /// `map[string]T`.
    Map(Rc<Type>),
    /// A defined type (`nodefeaturerule.MatchedElement`) and its underlying type.
    Named(Rc<str>, Rc<Type>),
}

/// Go's `reflect.Kind`, for the checks that look only at the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invalid,
    Interface,
    Bool,
    Int,
    Int64,
    Uint8,
    Float64,
    String,
    Slice,
    Map,
}

impl Kind {
    /// `reflect.Kind.String()`, for sprig's `kindOf` and error texts.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::Interface => "interface",
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Int64 => "int64",
            Kind::Uint8 => "uint8",
            Kind::Float64 => "float64",
            Kind::String => "string",
            Kind::Slice => "slice",
            Kind::Map => "map",
        }
    }
}

impl Type {
    pub fn slice(elem: Type) -> Type {
        Type::Slice(Rc::new(elem))
    }

    pub fn map(elem: Type) -> Type {
        Type::Map(Rc::new(elem))
    }

    pub fn named(name: &str, underlying: Type) -> Type {
        Type::Named(name.into(), Rc::new(underlying))
    }

    pub fn underlying(&self) -> &Type {
        match self {
            Type::Named(_, u) => u.underlying(),
            t => t,
        }
    }

    pub fn kind(&self) -> Kind {
        match self.underlying() {
            Type::Any => Kind::Interface,
            Type::Bool => Kind::Bool,
            Type::Int => Kind::Int,
            Type::Int64 => Kind::Int64,
            Type::Uint8 => Kind::Uint8,
            Type::Float64 => Kind::Float64,
            Type::String => Kind::String,
            Type::Slice(_) => Kind::Slice,
            Type::Map(_) => Kind::Map,
            Type::Named(..) => unreachable!("underlying() never returns a named type"),
        }
    }

    /// Element type of a slice or map.
    pub fn elem(&self) -> Option<&Type> {
        match self.underlying() {
            Type::Slice(e) | Type::Map(e) => Some(e),
            _ => None,
        }
    }

    /// `reflect.Type.String()`.
    pub fn name(&self) -> String {
        match self {
            Type::Any => "interface {}".into(),
            Type::Bool => "bool".into(),
            Type::Int => "int".into(),
            Type::Int64 => "int64".into(),
            Type::Uint8 => "uint8".into(),
            Type::Float64 => "float64".into(),
            Type::String => "string".into(),
            Type::Slice(e) => format!("[]{}", e.name()),
            Type::Map(e) => format!("map[string]{}", e.name()),
            Type::Named(n, _) => n.to_string(),
        }
    }

    /// Whether an untyped nil can stand for this type (text/template's `canBeNil`).
    pub fn can_be_nil(&self) -> bool {
        matches!(self.kind(), Kind::Interface | Kind::Slice | Kind::Map)
    }

    /// Go's assignability: identical types, anything to `interface {}`, or identical
    /// underlying types when at least one side is not a defined type.
    pub fn assignable_to(&self, to: &Type) -> bool {
        if self == to || *to == Type::Any {
            return true;
        }
        let named = |t: &Type| matches!(t, Type::Named(..));
        (!named(self) || !named(to)) && self.underlying() == to.underlying()
    }

    /// `reflect.Zero(t)`.
    pub fn zero(&self) -> Value {
        match self.underlying() {
            Type::Any => Value::Nil,
            Type::Bool => Value::Bool(false),
            Type::Int => Value::Int(0),
            Type::Int64 => Value::Int64(0),
            Type::Uint8 => Value::Uint8(0),
            Type::Float64 => Value::Float(0.0),
            Type::String => Value::str(""),
            Type::Slice(_) => Value::List(Rc::new(List::new(self.clone(), Vec::new(), true))),
            Type::Map(_) => Value::Map(Rc::new(Map::new(self.clone(), BTreeMap::new(), true))),
            Type::Named(..) => unreachable!("underlying() never returns a named type"),
        }
    }
}

/// A Go slice value: its type, its elements, and whether it is nil (prints `[]` either way,
/// but `toJson` says `null`).
#[derive(Debug)]
pub struct List {
    pub ty: Type,
    pub items: RefCell<Vec<Value>>,
    pub is_nil: bool,
}

impl List {
    pub fn new(ty: Type, items: Vec<Value>, is_nil: bool) -> List {
        List {
            ty,
            items: RefCell::new(items),
            is_nil,
        }
    }
}

/// A Go map with string keys; BTreeMap order is Go's sorted printing and range order.
#[derive(Debug)]
pub struct Map {
    pub ty: Type,
    pub entries: RefCell<BTreeMap<String, Value>>,
    pub is_nil: bool,
}

impl Map {
    pub fn new(ty: Type, entries: BTreeMap<String, Value>, is_nil: bool) -> Map {
        Map {
            ty,
            entries: RefCell::new(entries),
            is_nil,
        }
    }
}

/// A template value.
#[derive(Clone, Debug)]
pub enum Value {
    /// No value at all (Go's invalid `reflect.Value`): prints `<no value>`.
    Invalid,
    /// A nil `interface {}`, as in `list nil` or `index (dict) "x"` before the pipeline
    /// unwraps it.
    Nil,
    Bool(bool),
    /// Go `int`.
    Int(i64),
    /// Go `int64` (sprig's arithmetic).
    Int64(i64),
    /// A byte, from `index` on a string.
    Uint8(u8),
    Float(f64),
    Str(Rc<str>),
    List(Rc<List>),
    Map(Rc<Map>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    pub fn string(s: String) -> Value {
        Value::Str(s.into())
    }

    /// A `[]interface {}`.
    pub fn list(items: Vec<Value>) -> Value {
        Value::typed_list(Type::slice(Type::Any), items)
    }

    pub fn typed_list(ty: Type, items: Vec<Value>) -> Value {
        Value::List(Rc::new(List::new(ty, items, false)))
    }

    /// A `[]string`.
    pub fn strings(items: Vec<String>) -> Value {
        Value::typed_list(
            Type::slice(Type::String),
            items.into_iter().map(Value::string).collect(),
        )
    }

    /// A `map[string]interface {}`.
    pub fn dict(entries: BTreeMap<String, Value>) -> Value {
        Value::typed_map(Type::map(Type::Any), entries)
    }

    pub fn typed_map(ty: Type, entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Rc::new(Map::new(ty, entries, false)))
    }

    /// The Go type; None for an invalid value.
    pub fn ty(&self) -> Option<Type> {
        Some(match self {
            Value::Invalid => return None,
            Value::Nil => Type::Any,
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Int64(_) => Type::Int64,
            Value::Uint8(_) => Type::Uint8,
            Value::Float(_) => Type::Float64,
            Value::Str(_) => Type::String,
            Value::List(l) => l.ty.clone(),
            Value::Map(m) => m.ty.clone(),
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Value::Invalid => Kind::Invalid,
            v => v.ty().map(|t| t.kind()).unwrap_or(Kind::Invalid),
        }
    }

    /// The type's name for messages; `<nil>` when there is no value.
    pub fn type_name(&self) -> String {
        self.ty()
            .map(|t| t.name())
            .unwrap_or_else(|| "<nil>".into())
    }

    /// Go's `indirectInterface`: a nil interface is no value.
    pub fn indirect(self) -> Value {
        match self {
            Value::Nil => Value::Invalid,
            v => v,
        }
    }

    /// text/template's `isTrue`: the zero value of its type is false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Uint8(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.items.borrow().is_empty(),
            Value::Map(m) => !m.entries.borrow().is_empty(),
        }
    }

    /// Length of a string (bytes), slice or map; None for other kinds.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.len()),
            Value::List(l) => Some(l.items.borrow().len()),
            Value::Map(m) => Some(m.entries.borrow().len()),
            _ => None,
        }
    }

    /// The elements of a slice, cloned out (cheap: Rc inside).
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::List(l) => Some(l.items.borrow().clone()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Go's `reflect.DeepEqual` over template values.
    pub fn deep_equal(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Invalid, Value::Invalid) | (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) | (Value::Int64(a), Value::Int64(b)) => a == b,
            (Value::Uint8(a), Value::Uint8(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                if a.ty != b.ty || a.is_nil != b.is_nil {
                    return false;
                }
                let (x, y) = (a.items.borrow(), b.items.borrow());
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| p.deep_equal(q))
            }
            (Value::Map(a), Value::Map(b)) => {
                if a.ty != b.ty || a.is_nil != b.is_nil {
                    return false;
                }
                let (x, y) = (a.entries.borrow(), b.entries.borrow());
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.deep_equal(v2))
            }
            _ => false,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::string(s)
    }
}

/// NFD's `nodefeaturerule.MatchedElement` type (`map[string]string`).
pub fn matched_element_type() -> Type {
    Type::named("nodefeaturerule.MatchedElement", Type::map(Type::String))
}

/// One matched element: `{Name}` for a flag, `{Name, Value}` for an attribute, an
/// instance's whole attribute map for an instance.
pub fn matched_element(attrs: &BTreeMap<String, String>) -> Value {
    let entries = attrs
        .iter()
        .map(|(k, v)| (k.clone(), Value::str(v)))
        .collect();
    Value::typed_map(matched_element_type(), entries)
}

/// The data NFD executes a `varsTemplate` over (`matchedFeatures`, rule.go): domain as
/// written in the term -> the rest of the feature name -> matched elements in NFD's order.
/// An empty element list stands for NFD's nil slice (nothing was appended).
pub fn matched_features(domains: &BTreeMap<String, BTreeMap<String, Vec<Value>>>) -> Value {
    let elems_ty = Type::slice(matched_element_type());
    let domain_ty = Type::named(
        "nodefeaturerule.domainMatchedFeatures",
        Type::map(elems_ty.clone()),
    );
    let top_ty = Type::named(
        "nodefeaturerule.matchedFeatures",
        Type::map(domain_ty.clone()),
    );
    let top = domains
        .iter()
        .map(|(dom, feats)| {
            let inner = feats
                .iter()
                .map(|(name, elems)| {
                    let list = List::new(elems_ty.clone(), elems.clone(), elems.is_empty());
                    (name.clone(), Value::List(Rc::new(list)))
                })
                .collect();
            (dom.clone(), Value::typed_map(domain_ty.clone(), inner))
        })
        .collect();
    Value::typed_map(top_ty, top)
}
