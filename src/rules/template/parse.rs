//! The parser of Go's text/template/parse (parse.go, Go 1.26), with a nesting bound.
//!
//! A close port: the same three-token lookahead, the same variable scoping, the same
//! `{{define}}`/`{{block}}` tree set and the same error texts and line numbers. What Go
//! leaves unbounded (nested control structures) is bounded here by `Limits::max_depth`.

use std::collections::BTreeMap;

use super::funcs::{self, FuncStatus};
use super::lex::{Item, ItemType as T, Lexer};
use super::node::{Arg, Branch, Command, Node, Number, Pipe, Var};
use super::uni;
use super::{LimitKind, Limits, TemplateError};

/// What parsing a template source yields: every named tree; "" is the top-level one.
pub(crate) type TreeSet = BTreeMap<String, Vec<Node>>;

enum Parsed {
    Node(Node),
    End,
    Else,
}

impl Parsed {
    fn describe(&self) -> String {
        match self {
            Parsed::Node(n) => n.to_string(),
            Parsed::End => "{{end}}".into(),
            Parsed::Else => "{{else}}".into(),
        }
    }
}

type P<T> = Result<T, TemplateError>;

const MAX_PIPELINE_CMDS: usize = 100_000;

struct Parser<'a> {
    lex: Lexer<'a>,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    set: TreeSet,
    action_line: usize,
    range_depth: usize,
    depth: usize,
    max_depth: usize,
}

/// Parses `text` like `template.New("").Funcs(...).Parse(text)`.
pub(crate) fn parse(text: &str, limits: &Limits) -> P<TreeSet> {
    let blank = Item {
        typ: T::Eof,
        pos: 0,
        val: String::new(),
        line: 0,
    };
    let mut p = Parser {
        lex: Lexer::new(text),
        token: [blank.clone(), blank.clone(), blank],
        peek_count: 0,
        vars: vec!["$".into()],
        set: TreeSet::new(),
        action_line: 0,
        range_depth: 0,
        depth: 0,
        max_depth: limits.max_depth,
    };
    let root = p.parse_top()?;
    p.add(String::new(), root)?;
    Ok(p.set)
}

/// `IsEmptyTree`: only whitespace text.
fn is_empty_tree(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| match n {
        Node::Text { text, .. } => text
            .trim_matches(|c: char| c.is_ascii_whitespace())
            .is_empty(),
        _ => false,
    })
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Item {
        if self.peek_count > 0 {
            self.peek_count -= 1;
        } else {
            self.token[0] = self.lex.next_item();
        }
        self.token[self.peek_count].clone()
    }

    fn backup(&mut self) {
        self.peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        self.token[1] = t1;
        self.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.token[1] = t1;
        self.token[2] = t2;
        self.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.peek_count > 0 {
            return self.token[self.peek_count - 1].clone();
        }
        self.peek_count = 1;
        self.token[0] = self.lex.next_item();
        self.token[0].clone()
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != T::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf<X>(&self, msg: String) -> P<X> {
        Err(TemplateError::Parse {
            message: format!("template: :{}: {}", self.token[0].line, msg),
        })
    }

    fn deeper(&mut self) -> P<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(TemplateError::Limit {
                limit: LimitKind::Depth,
                message: format!(
                    "template: :{}: nesting deeper than {} levels (image-compat limit max_depth)",
                    self.token[0].line, self.max_depth
                ),
            });
        }
        Ok(())
    }

    fn expect(&mut self, expected: T, context: &str) -> P<Item> {
        let t = self.next_non_space();
        if t.typ != expected {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn unexpected<X>(&self, token: &Item, context: &str) -> P<X> {
        if token.typ == T::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at :{}", self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{}{}", token.describe(), extra));
        }
        self.errorf(format!("unexpected {} in {}", token.describe(), context))
    }

    fn add(&mut self, name: String, root: Vec<Node>) -> P<()> {
        match self.set.get(&name) {
            Some(existing) if !is_empty_tree(existing) => {
                if !is_empty_tree(&root) {
                    return self.errorf(format!(
                        "template: multiple definition of template {}",
                        uni::quote(&name)
                    ));
                }
            }
            _ => {
                self.set.insert(name, root);
            }
        }
        Ok(())
    }

    fn parse_top(&mut self) -> P<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().typ != T::Eof {
            if self.peek().typ == T::LeftDelim {
                let delim = self.next();
                if self.next_non_space().typ == T::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.backup2(delim);
            }
            match self.text_or_action()? {
                p @ (Parsed::End | Parsed::Else) => {
                    return self.errorf(format!("unexpected {}", p.describe()))
                }
                Parsed::Node(n) => root.push(n),
            }
        }
        Ok(root)
    }

    /// A `{{define}}` or `{{block}}` body is a new tree: fresh variables, no enclosing range.
    fn sub_tree<X>(&mut self, f: impl FnOnce(&mut Self) -> P<X>) -> P<X> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let range = std::mem::replace(&mut self.range_depth, 0);
        self.deeper()?;
        let r = f(self);
        self.depth -= 1;
        self.vars = vars;
        self.range_depth = range;
        r
    }

    fn parse_definition(&mut self) -> P<()> {
        const CONTEXT: &str = "define clause";
        let t = self.next_non_space();
        if t.typ != T::String && t.typ != T::RawString {
            return self.unexpected(&t, CONTEXT);
        }
        let Some(name) = uni::unquote(&t.val) else {
            return self.errorf("invalid syntax".into());
        };
        self.expect(T::RightDelim, CONTEXT)?;
        self.sub_tree(|p| {
            let (root, end) = p.item_list()?;
            if !matches!(end, Parsed::End) {
                return p.errorf(format!("unexpected {} in {}", end.describe(), CONTEXT));
            }
            p.add(name, root)
        })
    }

    fn item_list(&mut self) -> P<(Vec<Node>, Parsed)> {
        let mut list = Vec::new();
        while self.peek_non_space().typ != T::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                p => return Ok((list, p)),
            }
        }
        self.errorf("unexpected EOF".into())
    }

    fn text_or_action(&mut self) -> P<Parsed> {
        let t = self.next_non_space();
        match t.typ {
            T::Text => Ok(Parsed::Node(Node::Text {
                pos: t.pos,
                text: t.val,
            })),
            T::LeftDelim => {
                self.action_line = t.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => self.unexpected(&t, "input"),
        }
    }

    fn action(&mut self) -> P<Parsed> {
        let t = self.next_non_space();
        match t.typ {
            T::Block => return self.block_control(),
            T::Break | T::Continue => {
                let word = if t.typ == T::Break {
                    "break"
                } else {
                    "continue"
                };
                let next = self.next_non_space();
                if next.typ != T::RightDelim {
                    return self.unexpected(&next, &format!("{{{{{word}}}}}"));
                }
                if self.range_depth == 0 {
                    return self.errorf(format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                return Ok(Parsed::Node(if t.typ == T::Break {
                    Node::Break { pos: t.pos }
                } else {
                    Node::Continue { pos: t.pos }
                }));
            }
            T::Else => {
                let peek = self.peek_non_space();
                if peek.typ != T::If && peek.typ != T::With {
                    self.expect(T::RightDelim, "else")?;
                }
                return Ok(Parsed::Else);
            }
            T::End => {
                self.expect(T::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            T::If => return Ok(Parsed::Node(Node::If(self.parse_control("if")?))),
            T::Range => return Ok(Parsed::Node(Node::Range(self.parse_control("range")?))),
            T::With => return Ok(Parsed::Node(Node::With(self.parse_control("with")?))),
            T::Template => return self.template_control(),
            _ => {}
        }
        self.backup();
        let t = self.peek();
        let pipe = self.pipeline("command", T::RightDelim)?;
        Ok(Parsed::Node(Node::Action { pos: t.pos, pipe }))
    }

    fn parse_control(&mut self, context: &str) -> P<Branch> {
        let saved = self.vars.len();
        self.deeper()?;
        let pipe = self.pipeline(context, T::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        if let Parsed::Else = next {
            let peek = self.peek().typ;
            if context == "if" && peek == T::If {
                self.next();
                else_list = Some(vec![Node::If(self.parse_control("if")?)]);
            } else if context == "with" && peek == T::With {
                self.next();
                else_list = Some(vec![Node::With(self.parse_control("with")?)]);
            } else {
                let (l, next) = self.item_list()?;
                if !matches!(next, Parsed::End) {
                    return self.errorf(format!("expected end; found {}", next.describe()));
                }
                else_list = Some(l);
            }
        }
        self.depth -= 1;
        self.vars.truncate(saved);
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, t: &Item, context: &str) -> P<String> {
        match t.typ {
            T::String | T::RawString => match uni::unquote(&t.val) {
                Some(s) => Ok(s),
                None => self.errorf("invalid syntax".into()),
            },
            _ => self.unexpected(t, context),
        }
    }

    fn block_control(&mut self) -> P<Parsed> {
        const CONTEXT: &str = "block clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, T::RightDelim)?;
        let n = name.clone();
        self.sub_tree(|p| {
            let (root, end) = p.item_list()?;
            if !matches!(end, Parsed::End) {
                return p.errorf(format!("unexpected {} in {}", end.describe(), CONTEXT));
            }
            p.add(n, root)
        })?;
        Ok(Parsed::Node(Node::Template {
            pos: t.pos,
            name,
            pipe: Some(pipe),
        }))
    }

    fn template_control(&mut self) -> P<Parsed> {
        const CONTEXT: &str = "template clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, CONTEXT)?;
        let mut pipe = None;
        if self.next_non_space().typ != T::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(CONTEXT, T::RightDelim)?);
        }
        Ok(Parsed::Node(Node::Template {
            pos: t.pos,
            name,
            pipe,
        }))
    }

    fn pipeline(&mut self, context: &str, end: T) -> P<Pipe> {
        let t = self.peek_non_space();
        let mut pipe = Pipe {
            pos: t.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.typ != T::Variable {
                break;
            }
            self.next();
            let after = self.peek();
            let next = self.peek_non_space();
            if next.typ == T::Assign || next.typ == T::Declare {
                pipe.is_assign = next.typ == T::Assign;
                self.next_non_space();
                pipe.decl.push(new_var(v.pos, &v.val));
                self.vars.push(v.val.clone());
            } else if next.typ == T::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(new_var(v.pos, &v.val));
                self.vars.push(v.val.clone());
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        T::Variable | T::RightDelim | T::RightParen => continue 'decls,
                        _ => return self.errorf("range can only initialize variables".into()),
                    }
                }
                return self.errorf(format!("too many declarations in {context}"));
            } else if after.typ == T::Space {
                self.backup3(v, after);
            } else {
                self.backup2(v);
            }
            break;
        }
        loop {
            let t = self.next_non_space();
            match t.typ {
                x if x == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                T::Bool
                | T::CharConstant
                | T::Complex
                | T::Dot
                | T::Field
                | T::Identifier
                | T::Number
                | T::Nil
                | T::RawString
                | T::String
                | T::Variable
                | T::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                    if pipe.cmds.len() > MAX_PIPELINE_CMDS {
                        return self.errorf("pipeline too long".into());
                    }
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> P<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool { .. }
                        | Arg::Dot { .. }
                        | Arg::Nil { .. }
                        | Arg::Number(_)
                        | Arg::Str { .. }
                )
            ) {
                return self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> P<Command> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Command {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let t = self.next();
            match t.typ {
                T::Space => continue,
                T::RightDelim | T::RightParen => self.backup(),
                T::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf("empty command".into());
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> P<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != T::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut field = Vec::new();
        while self.peek().typ == T::Field {
            field.push(self.next().val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut ident, .. } => {
                ident.extend(field);
                Arg::Field { pos, ident }
            }
            Arg::Variable(mut v) => {
                v.ident.extend(field);
                Arg::Variable(Var {
                    pos,
                    ident: v.ident,
                })
            }
            n @ (Arg::Bool { .. }
            | Arg::Str { .. }
            | Arg::Number(_)
            | Arg::Nil { .. }
            | Arg::Dot { .. }) => {
                return self.errorf(format!(
                    "unexpected . after term {}",
                    uni::quote(&n.to_string())
                ))
            }
            n => Arg::Chain {
                pos,
                node: Box::new(n),
                field,
            },
        }))
    }

    fn term(&mut self) -> P<Option<Arg>> {
        let t = self.next_non_space();
        let pos = t.pos;
        Ok(Some(match t.typ {
            T::Identifier => {
                match funcs::status(&t.val) {
                    FuncStatus::Defined => {}
                    FuncStatus::Undefined => {
                        return self.errorf(format!("function {} not defined", uni::quote(&t.val)))
                    }
                    FuncStatus::Unsupported(why) => {
                        return Err(TemplateError::Unsupported {
                            name: t.val.clone(),
                            message: format!(
                            "template: :{}: function {} is not supported by image-compat ({why})",
                            self.token[0].line,
                            uni::quote(&t.val)
                        ),
                        })
                    }
                }
                Arg::Identifier { pos, name: t.val }
            }
            T::Dot => Arg::Dot { pos },
            T::Nil => Arg::Nil { pos },
            T::Variable => {
                let v = new_var(pos, &t.val);
                if !self.vars.contains(&v.ident[0]) {
                    return self.errorf(format!("undefined variable {}", uni::quote(&v.ident[0])));
                }
                Arg::Variable(v)
            }
            T::Field => Arg::Field {
                pos,
                ident: t.val[1..].split('.').map(String::from).collect(),
            },
            T::Bool => Arg::Bool {
                pos,
                val: t.val == "true",
            },
            T::CharConstant | T::Complex | T::Number => match new_number(pos, &t.val, t.typ) {
                Ok(n) => Arg::Number(Box::new(n)),
                Err(NumErr::Go(m)) => return self.errorf(m),
                Err(NumErr::Complex) => {
                    return Err(TemplateError::Unsupported {
                        name: t.val.clone(),
                        message: format!(
                            "template: :{}: complex constant {} is not supported by image-compat",
                            self.token[0].line, t.val
                        ),
                    })
                }
            },
            T::LeftParen => {
                self.deeper()?;
                let p = self.pipeline("parenthesized pipeline", T::RightParen)?;
                self.depth -= 1;
                Arg::Pipe(Box::new(p))
            }
            T::String | T::RawString => match uni::unquote(&t.val) {
                Some(text) => Arg::Str {
                    pos,
                    quoted: t.val,
                    text,
                },
                None => return self.errorf("invalid syntax".into()),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

fn new_var(pos: usize, ident: &str) -> Var {
    Var {
        pos,
        ident: ident.split('.').map(String::from).collect(),
    }
}

enum NumErr {
    Go(String),
    Complex,
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut saw = b'^';
    if !b.is_empty() && (b[0] == b'-' || b[0] == b'+') {
        i = 1;
    }
    let mut hex = false;
    if b.len() - i >= 2 && b[i] == b'0' && matches!(b[i + 1] | 0x20, b'b' | b'o' | b'x') {
        hex = b[i + 1] | 0x20 == b'x';
        i += 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseInt(s, 0, 64)` widened: the value if it is a valid Go integer literal.
fn parse_go_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.contains('_') && !underscore_ok(s) {
        return None;
    }
    let body: String = body.chars().filter(|&c| c != '_').collect();
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = u128::from_str_radix(&digits, radix).ok()?;
    if v > u64::MAX as u128 {
        return None;
    }
    Some(if neg { -(v as i128) } else { v as i128 })
}

/// `strconv.ParseFloat(s, 64)` for decimal literals (hex floats are refused).
fn parse_go_float(s: &str) -> Option<f64> {
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let t: String = s.chars().filter(|&c| c != '_').collect();
    let body = t.trim_start_matches(['+', '-']);
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn new_number(pos: usize, text: &str, typ: T) -> Result<Number, NumErr> {
    let mut n = Number {
        pos,
        text: text.to_string(),
        is_int: false,
        is_uint: false,
        is_float: false,
        int64: 0,
        float64: 0.0,
    };
    if typ == T::CharConstant {
        let inner = &text[1..];
        let (bytes, tail) =
            uni::unquote_char(inner, '\'').ok_or(NumErr::Go("invalid syntax".into()))?;
        if tail != "'" {
            return Err(NumErr::Go(format!("malformed character constant: {text}")));
        }
        let c = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.chars().next())
            .map(|c| c as i64)
            .unwrap_or(bytes.first().copied().unwrap_or(0) as i64);
        n.int64 = c;
        n.is_int = true;
        n.is_uint = true;
        n.float64 = c as f64;
        n.is_float = true;
        return Ok(n);
    }
    if typ == T::Complex || text.ends_with('i') {
        return Err(NumErr::Complex);
    }
    if let Some(v) = parse_go_int(text) {
        if v >= 0 {
            n.is_uint = !text.starts_with(['-', '+']);
        }
        if let Ok(i) = i64::try_from(v) {
            n.is_int = true;
            n.int64 = i;
            if i == 0 {
                n.is_uint = true;
            }
        }
        n.is_float = true;
        n.float64 = v as f64;
        return Ok(n);
    }
    if let Some(f) = parse_go_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(NumErr::Go(format!(
                "integer overflow: {}",
                uni::quote(text)
            )));
        }
        n.is_float = true;
        n.float64 = f;
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            n.is_int = true;
            n.int64 = f as i64;
        }
        if f.fract() == 0.0 && (0.0..1.8e19).contains(&f) {
            n.is_uint = true;
        }
        return Ok(n);
    }
    Err(NumErr::Go(format!(
        "illegal number syntax: {}",
        uni::quote(text)
    )))
}
