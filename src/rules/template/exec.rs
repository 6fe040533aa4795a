//! The executor (text/template exec.go, Go 1.26) with missingkey=error, plus the limits.
//!
//! Node for node as Go walks: the same argument conversion (`validateType`, `evalArg`),
//! the same error texts and locations. Every node, command, argument and iteration costs a
//! step; output, depth and steps are bounded by `Limits` (NFD bounds none of them).

use super::fmt::sprint;
use super::funcs::{lookup, Fail, Func, PT};
use super::node::{Arg, Branch, Command, Node, Number, Pipe, Var};
use super::parse::TreeSet;
use super::uni;
use super::value::Value;
use super::{LimitKind, Limits, TemplateError};

/// Where execution is, for error messages (Go's `s.at(node)`).
#[derive(Clone, Copy)]
enum At<'t> {
    Node(&'t Node),
    Pipe(&'t Pipe),
    Cmd(&'t Command),
    Arg(&'t Arg),
    Var(&'t Var),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Node(n) => n.pos(),
            At::Pipe(p) => p.pos,
            At::Cmd(c) => c.pos,
            At::Arg(a) => a.pos(),
            At::Var(v) => v.pos,
        }
    }

    fn context(&self) -> String {
        match self {
            At::Node(n) => n.to_string(),
            At::Pipe(p) => p.to_string(),
            At::Cmd(c) => c.to_string(),
            At::Arg(a) => a.to_string(),
            At::Var(v) => v.to_string(),
        }
    }
}

/// Why a walk stopped early.
pub(crate) enum Stop {
    Break,
    Continue,
    Err(TemplateError),
}

impl From<TemplateError> for Stop {
    fn from(e: TemplateError) -> Stop {
        Stop::Err(e)
    }
}

type R<T> = Result<T, TemplateError>;

pub(crate) struct State<'t, 'l> {
    set: &'t TreeSet,
    text: &'t str,
    name: &'t str,
    at: Option<At<'t>>,
    vars: Vec<(String, Value)>,
    depth: usize,
    steps: u64,
    out: String,
    lim: &'l Limits,
}

pub(crate) fn execute(set: &TreeSet, text: &str, data: &Value, lim: &Limits) -> R<String> {
    let root = set.get("").map(|v| v.as_slice()).unwrap_or(&[]);
    let mut s = State {
        set,
        text,
        name: "",
        at: None,
        vars: vec![("$".into(), data.clone())],
        depth: 0,
        steps: 0,
        out: String::new(),
        lim,
    };
    match s.walk_list(data, root) {
        Ok(()) => Ok(s.out),
        Err(Stop::Err(e)) => Err(e),
        // The parser allows break/continue only inside range, which consumes them.
        Err(Stop::Break | Stop::Continue) => Ok(s.out),
    }
}

impl<'t> State<'t, '_> {
    fn prefix(&self) -> String {
        match self.at {
            None => format!("template: {}: ", self.name),
            Some(at) => {
                let pos = at.pos().min(self.text.len());
                let before = &self.text[..pos];
                let col = match before.rfind('\n') {
                    None => pos,
                    Some(i) => pos - (i + 1),
                };
                let line = 1 + before.matches('\n').count();
                format!(
                    "template: :{line}:{col}: executing {} at <{}>: ",
                    uni::quote(self.name),
                    at.context()
                )
            }
        }
    }

    fn errorf<X>(&self, msg: String) -> R<X> {
        Err(TemplateError::Exec {
            message: format!("{}{msg}", self.prefix()),
        })
    }

    fn limit<X>(&self, limit: LimitKind, what: String) -> R<X> {
        Err(TemplateError::Limit {
            limit,
            message: format!(
                "{}{what} (image-compat limit {})",
                self.prefix(),
                limit.field()
            ),
        })
    }

    fn at(&mut self, at: At<'t>) {
        self.at = Some(at);
    }

    fn step(&mut self, cost: u64) -> R<()> {
        self.steps += cost;
        if self.steps > self.lim.max_steps {
            return self.limit(
                LimitKind::Steps,
                format!("more than {} evaluation steps", self.lim.max_steps),
            );
        }
        Ok(())
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > self.lim.max_depth {
            return self.limit(
                LimitKind::Depth,
                format!("nesting deeper than {} levels", self.lim.max_depth),
            );
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > self.lim.max_output_bytes {
            return self.limit(
                LimitKind::OutputBytes,
                format!("output longer than {} bytes", self.lim.max_output_bytes),
            );
        }
        self.out.push_str(s);
        Ok(())
    }

    fn show(&self, v: &Value) -> String {
        sprint(std::slice::from_ref(v), self.lim).unwrap_or_default()
    }

    fn var_value(&self, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.errorf(format!("undefined variable: {name}")),
        }
    }

    fn set_var(&mut self, name: &str, v: Value) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => self.errorf(format!("undefined variable: {name}")),
        }
    }

    fn set_top_var(&mut self, n: usize, v: Value) {
        let i = self.vars.len() - n;
        self.vars[i].1 = v;
    }

    fn walk_list(&mut self, dot: &Value, list: &'t [Node]) -> Result<(), Stop> {
        for n in list {
            self.walk(dot, n)?;
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &'t Node) -> Result<(), Stop> {
        self.step(1)?;
        self.at(At::Node(node));
        match node {
            Node::Action { pipe, .. } => {
                let v = self.eval_pipeline(dot, Some(pipe))?;
                if pipe.decl.is_empty() {
                    self.at(At::Node(node));
                    let s = match v {
                        Value::Invalid => "<no value>".to_string(),
                        v => match sprint(&[v], self.lim) {
                            Ok(s) => s,
                            Err(e) => return Err(self.fmt_fail(e.into()).into()),
                        },
                    };
                    self.write(&s)?;
                }
                Ok(())
            }
            Node::Break { .. } => Err(Stop::Break),
            Node::Continue { .. } => Err(Stop::Continue),
            Node::If(b) => self.walk_if_or_with(false, dot, b),
            Node::With(b) => self.walk_if_or_with(true, dot, b),
            Node::Range(b) => self.walk_range(dot, b),
            Node::Template { name, pipe, .. } => self.walk_template(dot, node, name, pipe.as_ref()),
            Node::Text { text, .. } => Ok(self.write(text)?),
        }
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Value, b: &'t Branch) -> Result<(), Stop> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, Some(&b.pipe))?;
        self.enter()?;
        let r = if val.truth() {
            self.walk_list(if with { &val } else { dot }, &b.list)
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e)
        } else {
            Ok(())
        };
        self.depth -= 1;
        self.vars.truncate(mark);
        r
    }

    fn one_iteration(
        &mut self,
        b: &'t Branch,
        mark: usize,
        index: Value,
        elem: Value,
    ) -> Result<bool, Stop> {
        self.step(1)?;
        let decl = &b.pipe.decl;
        if !decl.is_empty() {
            if b.pipe.is_assign {
                let v = if decl.len() > 1 {
                    index.clone()
                } else {
                    elem.clone()
                };
                self.set_var(&decl[0].ident[0], v)?;
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if decl.len() > 1 {
            if b.pipe.is_assign {
                self.set_var(&decl[1].ident[0], elem.clone())?;
            } else {
                self.set_top_var(2, index);
            }
        }
        let r = self.walk_list(&elem, &b.list);
        self.vars.truncate(mark);
        match r {
            Ok(()) | Err(Stop::Continue) => Ok(true),
            Err(Stop::Break) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn walk_range(&mut self, dot: &Value, b: &'t Branch) -> Result<(), Stop> {
        let mark0 = self.vars.len();
        let val = self.eval_pipeline(dot, Some(&b.pipe))?;
        let mark = self.vars.len();
        self.enter()?;
        let ran = match &val {
            Value::Int(_) | Value::Int64(_) | Value::Uint8(_) => {
                if b.pipe.decl.len() > 1 {
                    let s = self.show(&val);
                    return Err(self
                        .errorf::<()>(format!(
                            "can't use {s} to iterate over more than one variable"
                        ))
                        .unwrap_err()
                        .into());
                }
                let n = match val {
                    Value::Int(i) | Value::Int64(i) => i,
                    Value::Uint8(u) => u as i64,
                    _ => 0,
                };
                for i in 0..n.max(0) {
                    let e = match val {
                        Value::Int(_) => Value::Int(i),
                        Value::Int64(_) => Value::Int64(i),
                        _ => Value::Uint8(i as u8),
                    };
                    if !self.one_iteration(b, mark, Value::Invalid, e)? {
                        break;
                    }
                }
                n > 0
            }
            Value::List(l) => {
                let items = l.items.borrow().clone();
                for (i, e) in items.iter().enumerate() {
                    if !self.one_iteration(b, mark, Value::Int(i as i64), e.clone())? {
                        break;
                    }
                }
                !items.is_empty()
            }
            Value::Map(m) => {
                let entries: Vec<(String, Value)> = m
                    .entries
                    .borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (k, v) in &entries {
                    if !self.one_iteration(b, mark, Value::str(k), v.clone())? {
                        break;
                    }
                }
                !entries.is_empty()
            }
            Value::Invalid | Value::Nil => false,
            v => {
                let s = self.show(v);
                return Err(self
                    .errorf::<()>(format!("range can't iterate over {s}"))
                    .unwrap_err()
                    .into());
            }
        };
        let r = match (&b.else_list, ran) {
            (Some(e), false) => self.walk_list(dot, e),
            _ => Ok(()),
        };
        self.depth -= 1;
        self.vars.truncate(mark0);
        r
    }

    fn walk_template(
        &mut self,
        dot: &Value,
        node: &'t Node,
        name: &'t str,
        pipe: Option<&'t Pipe>,
    ) -> Result<(), Stop> {
        self.at(At::Node(node));
        let Some((tname, root)) = self.set.get_key_value(name) else {
            return Err(self
                .errorf::<()>(format!("template {} not defined", uni::quote(name)))
                .unwrap_err()
                .into());
        };
        if self.depth >= self.lim.max_depth {
            return Err(self
                .limit::<()>(
                    LimitKind::Depth,
                    format!("exceeded maximum template depth ({})", self.lim.max_depth),
                )
                .unwrap_err()
                .into());
        }
        let dot = self.eval_pipeline(dot, pipe)?;
        let vars = std::mem::replace(&mut self.vars, vec![("$".into(), dot.clone())]);
        let outer = std::mem::replace(&mut self.name, tname.as_str());
        self.depth += 1;
        let r = self.walk_list(&dot, root);
        self.depth -= 1;
        self.name = outer;
        self.vars = vars;
        match r {
            Err(Stop::Err(e)) => Err(Stop::Err(e)),
            _ => Ok(()),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: Option<&'t Pipe>) -> R<Value> {
        let Some(pipe) = pipe else {
            return Ok(Value::Invalid);
        };
        self.at(At::Pipe(pipe));
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            value = Some(v.indirect());
        }
        let value = value.unwrap_or(Value::Invalid);
        for v in &pipe.decl {
            if pipe.is_assign {
                self.set_var(&v.ident[0], value.clone())?;
            } else {
                self.vars.push((v.ident[0].clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return self.errorf(format!("can't give argument to non-function {}", args[0]));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Command, fin: Option<Value>) -> R<Value> {
        self.step(1)?;
        let first = &cmd.args[0];
        match first {
            Arg::Field { ident, .. } => {
                return self.eval_field_chain(
                    dot,
                    dot.clone(),
                    At::Arg(first),
                    ident,
                    &cmd.args,
                    fin,
                )
            }
            Arg::Chain { .. } => return self.eval_chain(dot, first, &cmd.args, fin),
            Arg::Identifier { name, .. } => {
                self.at(At::Arg(first));
                return self.eval_function(dot, name, At::Cmd(cmd), Some(&cmd.args), fin);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                self.enter()?;
                let r = self.eval_pipeline(dot, Some(p));
                self.depth -= 1;
                return r;
            }
            Arg::Variable(v) => return self.eval_variable(dot, v, &cmd.args, fin),
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => self.errorf("nil is not a command".into()),
            Arg::Number(n) => self.ideal_constant(first, n),
            Arg::Str { text, .. } => Ok(Value::str(text)),
            a => self.errorf(format!(
                "can't evaluate command {}",
                uni::quote(&a.to_string())
            )),
        }
    }

    fn ideal_constant(&mut self, at: &'t Arg, n: &Number) -> R<Value> {
        self.at(At::Arg(at));
        let hex_int = n.text.len() > 2
            && n.text.starts_with('0')
            && n.text[1..].starts_with(['x', 'X'])
            && !n.text.contains(['p', 'P']);
        if n.is_float
            && !hex_int
            && !n.text.starts_with('\'')
            && n.text.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Value::Float(n.float64));
        }
        if n.is_int {
            return Ok(Value::Int(n.int64));
        }
        if n.is_uint {
            return self.errorf(format!("{} overflows int", n.text));
        }
        Ok(Value::Invalid)
    }

    fn eval_chain(
        &mut self,
        dot: &Value,
        chain: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at(At::Arg(chain));
        let Arg::Chain { node, field, .. } = chain else {
            return self.errorf("internal error: not a chain".into());
        };
        if let Arg::Nil { .. } = node.as_ref() {
            return self.errorf(format!("indirection through explicit nil in {chain}"));
        }
        let recv = self.eval_arg(dot, None, node)?;
        self.eval_field_chain(dot, recv, At::Arg(chain), field, args, fin)
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        v: &'t Var,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at(At::Var(v));
        let value = self.var_value(&v.ident[0])?;
        if v.ident.len() == 1 {
            self.not_a_function(args, &fin)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, At::Var(v), &v.ident[1..], args, fin)
    }

    fn eval_field_chain(
        &mut self,
        _dot: &Value,
        mut recv: Value,
        node: At<'t>,
        ident: &[String],
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at(node);
        let n = ident.len();
        for name in &ident[..n - 1] {
            recv = self.eval_field(name, &[], &None, recv)?;
        }
        self.eval_field(&ident[n - 1], args, &fin, recv)
    }

    fn eval_field(
        &mut self,
        name: &str,
        args: &[Arg],
        fin: &Option<Value>,
        recv: Value,
    ) -> R<Value> {
        match &recv {
            Value::Invalid => {
                self.errorf(format!("nil data; no entry for key {}", uni::quote(name)))
            }
            Value::Nil => self.errorf(format!("nil pointer evaluating interface {{}}.{name}")),
            Value::Map(m) => {
                if args.len() > 1 || fin.is_some() {
                    return self.errorf(format!("{name} is not a method but has arguments"));
                }
                let found = m.entries.borrow().get(name).cloned();
                match found {
                    Some(v) => Ok(v),
                    None => self.errorf(format!("map has no entry for key {}", uni::quote(name))),
                }
            }
            v => self.errorf(format!(
                "can't evaluate field {name} in type {}",
                v.type_name()
            )),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        node: At<'t>,
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
    ) -> R<Value> {
        let Some(f) = lookup(name) else {
            return self.errorf(format!("{} is not a defined function", uni::quote(name)));
        };
        self.eval_call(dot, &f, node, name, args, fin)
    }

    fn eval_call(
        &mut self,
        dot: &Value,
        f: &Func,
        node: At<'t>,
        name: &str,
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
    ) -> R<Value> {
        let args: &'t [Arg] = args.map(|a| &a[1..]).unwrap_or(&[]);
        let num_in = args.len() + usize::from(fin.is_some());
        let mut num_fixed = args.len();
        let np = f.params.len();
        if f.variadic.is_some() {
            num_fixed = np;
            if num_in < num_fixed {
                return self.errorf(format!(
                    "wrong number of args for {name}: want at least {np} got {}",
                    args.len()
                ));
            }
        } else if num_in != np {
            return self.errorf(format!(
                "wrong number of args for {name}: want {np} got {num_in}"
            ));
        }
        if f.builtin && (name == "and" || name == "or") {
            let mut v = Value::Invalid;
            for a in args {
                v = self.eval_arg(dot, Some(PT::Reflect), a)?;
                if v.truth() == (name == "or") {
                    return Ok(v);
                }
            }
            if let Some(fin) = fin {
                v = fin;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < num_fixed && i < args.len() {
            argv.push(self.eval_arg(dot, Some(f.params[i]), &args[i])?);
            i += 1;
        }
        if let Some(vt) = f.variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, Some(vt), &args[i])?);
                i += 1;
            }
        }
        if let Some(fin) = fin {
            let t = match f.variadic {
                Some(vt) if num_in > num_fixed => vt,
                _ => f.params[num_in - 1],
            };
            argv.push(self.validate_type(fin, Some(t))?);
        }
        let result = (f.call)(self.lim, argv);
        self.at(node);
        match result {
            Ok(v) => {
                let cost = match &v {
                    Value::Str(s) => s.len() as u64 / 64,
                    v => v.len().unwrap_or(0) as u64,
                };
                self.step(1 + cost)?;
                Ok(v)
            }
            Err(e) => Err(self.call_fail(name, e)),
        }
    }

    fn call_fail(&self, name: &str, e: Fail) -> TemplateError {
        match e {
            Fail::Go(m) => TemplateError::Exec {
                message: format!("{}error calling {name}: {m}", self.prefix()),
            },
            e => self.fmt_fail(e),
        }
    }

    fn fmt_fail(&self, e: Fail) -> TemplateError {
        match e {
            Fail::Limit(limit, m) => TemplateError::Limit {
                limit,
                message: format!(
                    "{}{m} (image-compat limit {})",
                    self.prefix(),
                    limit.field()
                ),
            },
            Fail::Unsupported(m) => TemplateError::Unsupported {
                name: String::new(),
                message: format!("{}{m}", self.prefix()),
            },
            Fail::Go(m) => TemplateError::Exec {
                message: format!("{}{m}", self.prefix()),
            },
        }
    }

    fn validate_type(&self, v: Value, t: Option<PT>) -> R<Value> {
        let Some(pt) = t else { return Ok(v) };
        let Some(ty) = pt.ty() else { return Ok(v) };
        match v.ty() {
            None if ty.can_be_nil() => Ok(ty.zero()),
            None => self.errorf(format!("invalid value; expected {}", ty.name())),
            Some(vt) if vt.assignable_to(&ty) => Ok(v),
            Some(vt) => self.errorf(format!(
                "wrong type for value; expected {}; got {}",
                ty.name(),
                vt.name()
            )),
        }
    }

    fn eval_arg(&mut self, dot: &Value, t: Option<PT>, n: &'t Arg) -> R<Value> {
        self.step(1)?;
        self.at(At::Arg(n));
        let v = match n {
            Arg::Dot { .. } => dot.clone(),
            Arg::Nil { .. } => {
                return match t.and_then(|p| p.ty()) {
                    Some(ty) if ty.can_be_nil() => Ok(ty.zero()),
                    None => Ok(Value::Invalid),
                    Some(ty) => self.errorf(format!("cannot assign nil to {}", ty.name())),
                }
            }
            Arg::Field { ident, .. } => {
                self.eval_field_chain(dot, dot.clone(), At::Arg(n), ident, &[], None)?
            }
            Arg::Variable(v) => self.eval_variable(dot, v, &[], None)?,
            Arg::Pipe(p) => {
                self.enter()?;
                let r = self.eval_pipeline(dot, Some(p));
                self.depth -= 1;
                r?
            }
            Arg::Identifier { name, .. } => {
                self.eval_function(dot, name, At::Arg(n), None, None)?
            }
            Arg::Chain { .. } => self.eval_chain(dot, n, &[], None)?,
            _ => return self.eval_literal(t, n),
        };
        self.validate_type(v, t)
    }

    fn eval_literal(&mut self, t: Option<PT>, n: &'t Arg) -> R<Value> {
        let pt = t.unwrap_or(PT::Any);
        let found = |s: &Self, what: &str| s.errorf(format!("expected {what}; found {n}"));
        match (pt, n) {
            (PT::Bool, Arg::Bool { val, .. }) => Ok(Value::Bool(*val)),
            (PT::Bool, _) => found(self, "bool"),
            (PT::Float, Arg::Number(x)) if x.is_float => Ok(Value::Float(x.float64)),
            (PT::Float, _) => found(self, "float"),
            (PT::Int, Arg::Number(x)) if x.is_int => Ok(Value::Int(x.int64)),
            (PT::Int, _) => found(self, "integer"),
            (PT::Str, Arg::Str { text, .. }) => Ok(Value::str(text)),
            (PT::Str, _) => found(self, "string"),
            (PT::Any | PT::Reflect, Arg::Bool { val, .. }) => Ok(Value::Bool(*val)),
            (PT::Any | PT::Reflect, Arg::Number(x)) => self.ideal_constant(n, x),
            (PT::Any | PT::Reflect, Arg::Str { text, .. }) => Ok(Value::str(text)),
            (PT::Dict, _) => self.errorf(format!(
                "can't handle {n} for arg of type map[string]interface {{}}"
            )),
            _ => self.errorf(format!(
                "can't handle assignment of {n} to empty interface argument"
            )),
        }
    }
}
