//! `ast.literal_eval`, as CPython 3.11 runs it on a `.npy` header: the Python literals a header
//! (and a dtype descriptor's sub-array shape) is written in. Knows nothing of element types, so
//! both `dtype.rs` and the header reader (`format/npy/mod.rs`) stand on it.

/// A Python literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Dict(Vec<(Value, Value)>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Set(Vec<Value>),
    Str(String),
    /// A str with a lone surrogate (`'\ud800'`), which a Rust `String` cannot hold: its code points.
    WStr(Vec<u32>),
    Bytes(Vec<u8>),
    /// Saturated to the range of `i128` (far beyond any dimension NumPy takes).
    Int(i128),
    Bool(bool),
    None,
    /// Floats, complex numbers and `...`: valid literals, never a valid header value.
    Other,
}

impl Value {
    fn hashable(&self) -> bool {
        match self {
            Value::Dict(_) | Value::List(_) | Value::Set(_) => false,
            Value::Tuple(items) => items.iter().all(Value::hashable),
            _ => true,
        }
    }
}

/// The literal as Python would print it, shortened for a message.
pub fn short_repr(v: &Value) -> String {
    fn seq(out: &mut String, items: &[Value], open: &str, close: &str) {
        out.push_str(open);
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            repr(out, x);
        }
        out.push_str(close);
    }
    fn repr(out: &mut String, v: &Value) {
        if out.len() > 200 {
            return;
        }
        match v {
            Value::Dict(items) => {
                out.push('{');
                for (i, (k, x)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    repr(out, k);
                    out.push_str(": ");
                    repr(out, x);
                }
                out.push('}');
            }
            Value::Tuple(items) if items.len() == 1 => seq(out, items, "(", ",)"),
            Value::Tuple(items) => seq(out, items, "(", ")"),
            Value::List(items) => seq(out, items, "[", "]"),
            Value::Set(items) if items.is_empty() => out.push_str("set()"),
            Value::Set(items) => seq(out, items, "{", "}"),
            Value::Str(s) => out.push_str(&format!("'{}'", s.escape_debug())),
            Value::WStr(cs) => {
                out.push('\'');
                for &c in cs {
                    match char::from_u32(c) {
                        Some(c) => out.extend(c.escape_debug()),
                        None => out.push_str(&format!("\\u{c:04x}")),
                    }
                }
                out.push('\'');
            }
            Value::Bytes(b) => out.push_str(&format!("b'{}'", b.escape_ascii())),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
            Value::None => out.push_str("None"),
            Value::Other => out.push_str("<number>"),
        }
    }
    let mut out = String::new();
    repr(&mut out, v);
    if out.len() > 200 {
        let mut end = 200;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// `ast.literal_eval(s)` as CPython 3.11 evaluates it: literals only (strings with any prefix,
/// escapes, implicit concatenation; ints in any base; floats and complex numbers; tuples, lists,
/// sets, dicts, `set()`; True, False, None, `...`), comments, line continuations, at most 200
/// nested brackets. `Err` says why Python would raise.
pub fn parse_literal(s: &str) -> Result<Value, String> {
    // literal_eval strips leading spaces and tabs; the compiler refuses NUL and reads '\r\n' and
    // a lone '\r' as '\n'.
    let s = s.trim_start_matches([' ', '\t']);
    if s.contains('\0') {
        return Err("the header contains a NUL character".into());
    }
    let text = s.replace("\r\n", "\n").replace('\r', "\n");
    let mut p = Parser { lx: Lexer { s: &text, i: 0, open: Vec::new(), atbol: true }, peeked: None };
    p.eval()
}

/// Python's limit on nested brackets (the tokenizer's `MAXLEVEL`).
const MAX_BRACKETS: usize = 200;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Newline,
    End,
    /// One of `( ) [ ] { } , : + -`.
    Op(u8),
    Ellipsis,
    Name(String),
    Int(i128),
    Float,
    Imaginary,
    Str(Value),
    FString,
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
    /// The open brackets, innermost last.
    open: Vec<u8>,
    /// At the beginning of a line.
    atbol: bool,
}

impl Lexer<'_> {
    fn byte(&self, k: usize) -> Option<u8> {
        self.s.as_bytes().get(self.i + k).copied()
    }

    fn cur(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn bump(&mut self) {
        self.i += self.cur().map_or(0, char::len_utf8);
    }

    /// After a backslash: a newline, and more text.
    fn continuation(&mut self) -> Result<(), String> {
        if self.byte(0) != Some(b'\n') {
            return Err("unexpected character after a line continuation backslash".into());
        }
        self.i += 1;
        if self.byte(0).is_none() {
            return Err("the header ends after a line continuation backslash".into());
        }
        Ok(())
    }

    /// The next token (CPython's `tok_get`).
    fn next(&mut self) -> Result<Tok, String> {
        'line: loop {
            // Lines with only whitespace and comments are skipped.
            let mut blank = false;
            if self.atbol {
                self.atbol = false;
                let (mut col, mut cont_col) = (0usize, 0usize);
                loop {
                    match self.byte(0) {
                        Some(b' ') => col += 1,
                        Some(b'\t') => col = (col / 8 + 1) * 8,
                        Some(b'\x0c') => col = 0,
                        Some(b'\\') => {
                            if cont_col == 0 {
                                cont_col = col;
                            }
                            self.i += 1;
                            self.continuation()?;
                            continue;
                        }
                        _ => break,
                    }
                    self.i += 1;
                }
                blank = matches!(self.byte(0), Some(b'#' | b'\n'));
                let col = if cont_col != 0 { cont_col } else { col };
                if !blank && self.open.is_empty() && col != 0 {
                    return Err("unexpected indent".into());
                }
            }
            loop {
                while matches!(self.byte(0), Some(b' ' | b'\t' | b'\x0c')) {
                    self.i += 1;
                }
                let Some(c) = self.byte(0) else {
                    return match self.open.last() {
                        None => Ok(Tok::End),
                        Some(&b) => Err(format!("'{}' was never closed", b as char)),
                    };
                };
                match c {
                    b'#' => {
                        while !matches!(self.byte(0), None | Some(b'\n')) {
                            self.bump();
                        }
                    }
                    b'\n' => {
                        self.i += 1;
                        self.atbol = true;
                        if blank || !self.open.is_empty() {
                            continue 'line;
                        }
                        return Ok(Tok::Newline);
                    }
                    b'\\' => {
                        self.i += 1;
                        self.continuation()?;
                    }
                    _ => return self.token(c),
                }
            }
        }
    }

    fn token(&mut self, c: u8) -> Result<Tok, String> {
        if c.is_ascii_alphabetic() || c == b'_' {
            return self.name_or_string();
        }
        if c.is_ascii_digit() || (c == b'.' && self.byte(1).is_some_and(|d| d.is_ascii_digit())) {
            return self.number();
        }
        if c == b'\'' || c == b'"' {
            return self.string(false, false, false);
        }
        if self.s[self.i..].starts_with("...") {
            self.i += 3;
            return Ok(Tok::Ellipsis);
        }
        let what = self.cur().unwrap_or(' ');
        self.bump();
        match c {
            b'(' | b'[' | b'{' => {
                if self.open.len() >= MAX_BRACKETS {
                    return Err(format!("too many nested brackets (Python allows {MAX_BRACKETS})"));
                }
                self.open.push(c);
                Ok(Tok::Op(c))
            }
            b')' | b']' | b'}' => {
                let want = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                match self.open.pop() {
                    Some(o) if o == want => Ok(Tok::Op(c)),
                    Some(o) => Err(format!("'{}' does not close '{}'", c as char, o as char)),
                    None => Err(format!("unmatched '{}'", c as char)),
                }
            }
            b',' | b':' | b'+' | b'-' => Ok(Tok::Op(c)),
            _ => Err(format!("{what:?} is not part of a literal")),
        }
    }

    /// A name, or a string with a prefix (`r''`, `b''`, `u''`, `f''`, `rb''`, ...).
    fn name_or_string(&mut self) -> Result<Tok, String> {
        let start = self.i;
        let (mut b, mut r, mut u, mut f) = (false, false, false, false);
        loop {
            match self.byte(0) {
                Some(b'b' | b'B') if !(b || u || f) => b = true,
                Some(b'u' | b'U') if !(b || u || r || f) => u = true,
                Some(b'r' | b'R') if !(r || u) => r = true,
                Some(b'f' | b'F') if !(f || b || u) => f = true,
                _ => break,
            }
            self.i += 1;
            if matches!(self.byte(0), Some(b'\'' | b'"')) {
                return self.string(r, b, f);
            }
        }
        while self.cur().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()) {
            self.bump();
        }
        let name = &self.s[start..self.i];
        if !name.is_ascii() {
            return Err(format!("{} is not a literal", crate::quote::text(name)));
        }
        Ok(Tok::Name(name.to_string()))
    }

    fn number(&mut self) -> Result<Tok, String> {
        let start = self.i;
        let digit = |l: &Self| l.byte(0).is_some_and(|c| c.is_ascii_digit());
        // Digits with single underscores between them.
        let tail = |l: &mut Self| -> Result<(), String> {
            loop {
                while digit(l) {
                    l.i += 1;
                }
                if l.byte(0) != Some(b'_') {
                    return Ok(());
                }
                l.i += 1;
                if !digit(l) {
                    return Err("invalid decimal literal".into());
                }
            }
        };
        let c = self.byte(0).unwrap_or(0);
        let radix = match (c, self.byte(1)) {
            (b'0', Some(b'x' | b'X')) => 16,
            (b'0', Some(b'o' | b'O')) => 8,
            (b'0', Some(b'b' | b'B')) => 2,
            _ => 10,
        };
        if radix != 10 {
            self.i += 2;
            loop {
                if self.byte(0) == Some(b'_') {
                    self.i += 1;
                }
                if !self.byte(0).is_some_and(|c| (c as char).is_digit(radix)) {
                    return Err(format!("invalid base-{radix} literal"));
                }
                while self.byte(0).is_some_and(|c| (c as char).is_digit(radix)) {
                    self.i += 1;
                }
                if self.byte(0) != Some(b'_') {
                    break;
                }
            }
            if digit(self) {
                return Err(format!("invalid digit in a base-{radix} literal"));
            }
            return self.int_token(start + 2, radix);
        }
        let mut float = false;
        if c == b'0' {
            // "0", "00", "0_0"; more digits only before a fraction, exponent or j.
            while matches!(self.byte(0), Some(b'0' | b'_')) {
                if self.byte(0) == Some(b'_') {
                    self.i += 1;
                    if !digit(self) {
                        return Err("invalid decimal literal".into());
                    }
                } else {
                    self.i += 1;
                }
            }
            let nonzero = digit(self);
            tail(self)?;
            if nonzero && !matches!(self.byte(0), Some(b'.' | b'e' | b'E' | b'j' | b'J')) {
                return Err("leading zeros in a decimal integer".into());
            }
        } else if c != b'.' {
            tail(self)?;
        }
        if self.byte(0) == Some(b'.') {
            float = true;
            self.i += 1;
            if digit(self) {
                tail(self)?;
            }
        }
        if matches!(self.byte(0), Some(b'e' | b'E')) {
            float = true;
            self.i += 1;
            if matches!(self.byte(0), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digit(self) {
                return Err("invalid decimal literal".into());
            }
            tail(self)?;
        }
        if matches!(self.byte(0), Some(b'j' | b'J')) {
            self.i += 1;
            self.end_of_number()?;
            return Ok(Tok::Imaginary);
        }
        if float {
            self.end_of_number()?;
            return Ok(Tok::Float);
        }
        self.int_token(start, 10)
    }

    /// A number may not run into a name (`3L`, `1_`, `0x1g`).
    fn end_of_number(&self) -> Result<(), String> {
        match self.cur() {
            Some(c) if c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii() => Err(format!(
                "invalid number literal {}",
                crate::quote::text(self.s[..self.i].rsplit([' ', '(', ',']).next().unwrap_or(""))
            )),
            _ => Ok(()),
        }
    }

    fn int_token(&mut self, digits_start: usize, radix: u32) -> Result<Tok, String> {
        self.end_of_number()?;
        let digits: String = self.s[digits_start..self.i].chars().filter(|&c| c != '_').collect();
        // Python 3.11 refuses decimal literals of more than 4300 digits.
        if radix == 10 && digits.len() > 4300 {
            return Err("an integer literal of more than 4300 digits".into());
        }
        Ok(Tok::Int(i128::from_str_radix(&digits, radix).unwrap_or(i128::MAX)))
    }

    /// A string literal from its opening quote.
    fn string(&mut self, raw: bool, bytes: bool, fstring: bool) -> Result<Tok, String> {
        let q = self.byte(0).unwrap_or(b'\'');
        self.i += 1;
        let triple = self.byte(0) == Some(q) && self.byte(1) == Some(q);
        if triple {
            self.i += 2;
        } else if self.byte(0) == Some(q) {
            self.i += 1;
            return Ok(if fstring {
                Tok::FString
            } else {
                Tok::Str(if bytes { Value::Bytes(Vec::new()) } else { Value::Str(String::new()) })
            });
        }
        let start = self.i;
        let mut quotes = 0;
        let end = loop {
            let Some(c) = self.cur() else {
                return Err("unterminated string".into());
            };
            self.bump();
            if c == q as char {
                quotes += 1;
                if !triple || quotes == 3 {
                    break self.i - quotes;
                }
                continue;
            }
            quotes = 0;
            if c == '\n' && !triple {
                return Err("unterminated string (a newline in a one-line string)".into());
            }
            if c == '\\' {
                if self.cur().is_none() {
                    return Err("unterminated string".into());
                }
                self.bump();
            }
        };
        if fstring {
            return Ok(Tok::FString);
        }
        let body = &self.s[start..end];
        if bytes {
            if !body.is_ascii() {
                return Err("bytes can only contain ASCII literal characters".into());
            }
            let mut out = Vec::new();
            if raw {
                out.extend_from_slice(body.as_bytes());
            } else {
                unescape(body, true, |c| out.push(c as u8))?;
            }
            return Ok(Tok::Str(Value::Bytes(out)));
        }
        let mut cps: Vec<u32> = Vec::new();
        if raw {
            cps.extend(body.chars().map(u32::from));
        } else {
            unescape(body, false, |c| cps.push(c))?;
        }
        Ok(Tok::Str(match cps.iter().map(|&c| char::from_u32(c)).collect::<Option<String>>() {
            Some(s) => Value::Str(s),
            None => Value::WStr(cps),
        }))
    }
}

/// Python's backslash escapes in a non-raw string body; `bytes` for `b''` (no `\u`, `\U`, `\N`;
/// octal escapes wrap at 256).
fn unescape(body: &str, bytes: bool, mut push: impl FnMut(u32)) -> Result<(), String> {
    let mut it = body.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            push(c.into());
            continue;
        }
        let Some(e) = it.next() else {
            return Err("unterminated string".into()); // cannot happen: the lexer pairs backslashes
        };
        let mut hex = |n: usize| -> Result<u32, String> {
            let mut v = 0u32;
            for _ in 0..n {
                let d = it.next().and_then(|c| c.to_digit(16)).ok_or_else(|| format!("truncated \\{e} escape"))?;
                v = v * 16 + d;
            }
            Ok(v)
        };
        match e {
            '\n' => {}
            '\\' | '\'' | '"' => push(e.into()),
            'a' => push(7),
            'b' => push(8),
            'f' => push(12),
            'n' => push(10),
            'r' => push(13),
            't' => push(9),
            'v' => push(11),
            'x' => push(hex(2)?),
            'u' if !bytes => push(hex(4)?),
            'U' if !bytes => {
                let v = hex(8)?;
                if v > 0x10ffff {
                    return Err("illegal Unicode character in \\U escape".into());
                }
                push(v);
            }
            'N' if !bytes => {
                let mut name = String::new();
                if it.next() != Some('{') {
                    return Err("malformed \\N character escape".into());
                }
                loop {
                    match it.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err("malformed \\N character escape".into()),
                    }
                }
                match ascii_named(&name) {
                    Some(c) => push(c),
                    None => return Err(format!("\\N{{{}}}: not the name of a printable ASCII character", name)),
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            it.next();
                        }
                        None => break,
                    }
                }
                push(if bytes { v & 0xff } else { v });
            }
            _ => {
                push('\\'.into());
                push(e.into());
            }
        }
    }
    Ok(())
}

/// The character a `\N{NAME}` escape names (case-insensitive, as Python looks names up), for
/// the printable ASCII characters only: keys and `descr` strings that `numpy.load` accepts are
/// ASCII, so any other name, valid or not, makes a header it refuses anyway.
fn ascii_named(name: &str) -> Option<u32> {
    const PUNCT: [(&str, u8); 33] = [
        ("SPACE", b' '),
        ("SP", b' '), // Unicode's abbreviation alias, which Python accepts
        ("EXCLAMATION MARK", b'!'),
        ("QUOTATION MARK", b'"'),
        ("NUMBER SIGN", b'#'),
        ("DOLLAR SIGN", b'$'),
        ("PERCENT SIGN", b'%'),
        ("AMPERSAND", b'&'),
        ("APOSTROPHE", b'\''),
        ("LEFT PARENTHESIS", b'('),
        ("RIGHT PARENTHESIS", b')'),
        ("ASTERISK", b'*'),
        ("PLUS SIGN", b'+'),
        ("COMMA", b','),
        ("HYPHEN-MINUS", b'-'),
        ("FULL STOP", b'.'),
        ("SOLIDUS", b'/'),
        ("COLON", b':'),
        ("SEMICOLON", b';'),
        ("LESS-THAN SIGN", b'<'),
        ("EQUALS SIGN", b'='),
        ("GREATER-THAN SIGN", b'>'),
        ("QUESTION MARK", b'?'),
        ("COMMERCIAL AT", b'@'),
        ("LEFT SQUARE BRACKET", b'['),
        ("REVERSE SOLIDUS", b'\\'),
        ("RIGHT SQUARE BRACKET", b']'),
        ("CIRCUMFLEX ACCENT", b'^'),
        ("LOW LINE", b'_'),
        ("GRAVE ACCENT", b'`'),
        ("LEFT CURLY BRACKET", b'{'),
        ("VERTICAL LINE", b'|'),
        ("RIGHT CURLY BRACKET", b'}'),
    ];
    const DIGITS: [&str; 10] = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"];
    let up = name.to_ascii_uppercase();
    let letter = |rest: &str| match rest.as_bytes() {
        [c @ b'A'..=b'Z'] => Some(*c),
        _ => None,
    };
    let c = if let Some(rest) = up.strip_prefix("LATIN CAPITAL LETTER ") {
        letter(rest)?
    } else if let Some(rest) = up.strip_prefix("LATIN SMALL LETTER ") {
        letter(rest)?.to_ascii_lowercase()
    } else if let Some(rest) = up.strip_prefix("DIGIT ") {
        b'0' + DIGITS.iter().position(|&d| d == rest)? as u8
    } else if up == "TILDE" {
        b'~'
    } else {
        PUNCT.iter().find(|(n, _)| *n == up)?.1
    };
    Some(c.into())
}

/// How an expression's AST node looks to `literal_eval`'s number rules.
#[derive(Clone, Copy, PartialEq)]
enum Node {
    /// A number constant (possibly in parentheses).
    Number {
        imaginary: bool,
    },
    /// `+` or `-` applied to a number constant.
    Signed {
        imaginary: bool,
    },
    Other,
}

struct Parser<'a> {
    lx: Lexer<'a>,
    peeked: Option<Tok>,
}

fn unexpected(t: &Tok) -> String {
    match t {
        Tok::Newline => "unexpected end of line".into(),
        Tok::End => "unexpected end of header".into(),
        Tok::Op(c) => format!("unexpected '{}'", *c as char),
        Tok::Ellipsis => "unexpected '...'".into(),
        Tok::Name(n) => format!("{} is not a literal", crate::quote::text(n)),
        Tok::Int(_) | Tok::Float | Tok::Imaginary => "unexpected number".into(),
        Tok::Str(_) => "unexpected string".into(),
        Tok::FString => "f-strings are not literals".into(),
    }
}

impl Parser<'_> {
    fn peek(&mut self) -> Result<&Tok, String> {
        let tok = match self.peeked.take() {
            Some(t) => t,
            None => self.lx.next()?,
        };
        Ok(self.peeked.insert(tok))
    }

    fn next(&mut self) -> Result<Tok, String> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lx.next(),
        }
    }

    /// Takes the operator `c` if it comes next.
    fn eat(&mut self, c: u8) -> Result<bool, String> {
        if *self.peek()? == Tok::Op(c) {
            self.peeked = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// `eval_input`: an expression or a tuple without brackets, then newlines.
    fn eval(&mut self) -> Result<Value, String> {
        let first = self.expr()?;
        let v = if *self.peek()? == Tok::Op(b',') {
            let mut items = vec![first];
            while self.eat(b',')? {
                if matches!(self.peek()?, Tok::Newline | Tok::End) {
                    break;
                }
                items.push(self.expr()?);
            }
            Value::Tuple(items)
        } else {
            first
        };
        loop {
            match self.next()? {
                Tok::Newline => {}
                Tok::End => return Ok(v),
                t => return Err(unexpected(&t)),
            }
        }
    }

    fn expr(&mut self) -> Result<Value, String> {
        Ok(self.expr_node()?.0)
    }

    /// A literal expression: an atom, a signed number, or `real ± imaginary`.
    fn expr_node(&mut self) -> Result<(Value, Node), String> {
        let (v, node) = match *self.peek()? {
            Tok::Op(sign @ (b'+' | b'-')) => {
                self.peeked = None;
                let (v, node) = self.atom()?;
                let Node::Number { imaginary } = node else {
                    return Err("a sign applies only to a number".into());
                };
                let v = match v {
                    Value::Int(n) if sign == b'-' => Value::Int(n.saturating_neg()),
                    v => v,
                };
                (v, Node::Signed { imaginary })
            }
            _ => self.atom()?,
        };
        if matches!(*self.peek()?, Tok::Op(b'+' | b'-')) {
            self.peeked = None;
            let real = matches!(node, Node::Number { imaginary: false } | Node::Signed { imaginary: false });
            let (_, right) = self.atom()?;
            if !real || right != (Node::Number { imaginary: true }) {
                return Err("the only sums that are literals are real ± imaginary numbers".into());
            }
            return Ok((Value::Other, Node::Other));
        }
        Ok((v, node))
    }

    fn atom(&mut self) -> Result<(Value, Node), String> {
        let number = Node::Number { imaginary: false };
        Ok(match self.next()? {
            Tok::Op(b'(') => {
                if self.eat(b')')? {
                    return Ok((Value::Tuple(Vec::new()), Node::Other));
                }
                let (first, node) = self.expr_node()?;
                if self.eat(b')')? {
                    return Ok((first, node)); // parentheses only group
                }
                let mut items = vec![first];
                self.rest(&mut items, b')')?;
                (Value::Tuple(items), Node::Other)
            }
            Tok::Op(b'[') => {
                let mut items = Vec::new();
                if !self.eat(b']')? {
                    items.push(self.expr()?);
                    self.rest(&mut items, b']')?;
                }
                (Value::List(items), Node::Other)
            }
            Tok::Op(b'{') => (self.dict_or_set()?, Node::Other),
            Tok::Str(s) => (self.strings(s)?, Node::Other),
            Tok::Int(n) => (Value::Int(n), number),
            Tok::Float => (Value::Other, number),
            Tok::Imaginary => (Value::Other, Node::Number { imaginary: true }),
            Tok::Ellipsis => (Value::Other, Node::Other),
            Tok::Name(n) => match n.as_str() {
                "True" => (Value::Bool(true), Node::Other),
                "False" => (Value::Bool(false), Node::Other),
                "None" => (Value::None, Node::Other),
                "set" if self.eat(b'(')? && self.eat(b')')? => (Value::Set(Vec::new()), Node::Other),
                _ => return Err(format!("{} is not a literal", crate::quote::text(&n))),
            },
            t => return Err(unexpected(&t)),
        })
    }

    /// After a sequence's first item: `, item` ... `[,] close`.
    fn rest(&mut self, items: &mut Vec<Value>, close: u8) -> Result<(), String> {
        loop {
            match self.next()? {
                Tok::Op(c) if c == close => return Ok(()),
                Tok::Op(b',') => {
                    if self.eat(close)? {
                        return Ok(());
                    }
                    items.push(self.expr()?);
                }
                t => return Err(unexpected(&t)),
            }
        }
    }

    fn dict_or_set(&mut self) -> Result<Value, String> {
        if self.eat(b'}')? {
            return Ok(Value::Dict(Vec::new()));
        }
        let first = self.expr()?;
        if !self.eat(b':')? {
            let mut items = vec![first];
            self.rest(&mut items, b'}')?;
            if !items.iter().all(Value::hashable) {
                return Err("unhashable set element".into());
            }
            let mut set: Vec<Value> = Vec::new();
            for x in items {
                if !set.contains(&x) {
                    set.push(x);
                }
            }
            return Ok(Value::Set(set));
        }
        let mut items: Vec<(Value, Value)> = Vec::new();
        let mut key = first;
        loop {
            let value = self.expr()?;
            if !key.hashable() {
                return Err("unhashable dict key".into());
            }
            // A repeated key keeps its first place and its last value.
            match items.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => items.push((key, value)),
            }
            match self.next()? {
                Tok::Op(b'}') => return Ok(Value::Dict(items)),
                Tok::Op(b',') if self.eat(b'}')? => return Ok(Value::Dict(items)),
                Tok::Op(b',') => {
                    key = self.expr()?;
                    if !self.eat(b':')? {
                        return Err("':' expected after a dict key".into());
                    }
                }
                t => return Err(unexpected(&t)),
            }
        }
    }

    /// Adjacent string literals are one string (`'des' 'cr'`); str and bytes do not mix, and
    /// f-strings are no literals.
    fn strings(&mut self, first: Value) -> Result<Value, String> {
        let mut acc = first;
        loop {
            let next = match self.peek()? {
                Tok::Str(_) => match self.peeked.take() {
                    Some(Tok::Str(v)) => v,
                    _ => return Ok(acc),
                },
                Tok::FString => return Err("f-strings are not literals".into()),
                _ => return Ok(acc),
            };
            acc = match (acc, next) {
                (Value::Bytes(mut a), Value::Bytes(b)) => {
                    a.extend(b);
                    Value::Bytes(a)
                }
                (Value::Str(mut a), Value::Str(b)) => {
                    a.push_str(&b);
                    Value::Str(a)
                }
                (a @ (Value::Str(_) | Value::WStr(_)), b @ (Value::Str(_) | Value::WStr(_))) => {
                    let cps = |v: Value| -> Vec<u32> {
                        match v {
                            Value::Str(s) => s.chars().map(u32::from).collect(),
                            Value::WStr(c) => c,
                            _ => Vec::new(),
                        }
                    };
                    let mut c = cps(a);
                    c.extend(cps(b));
                    Value::WStr(c)
                }
                _ => return Err("cannot mix bytes and str literals".into()),
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// NumPy's `_filter_header`, for format 1.0 and 2.0 headers `ast.literal_eval` refused: Python's
// `tokenize` and `untokenize` over the text, dropping each name `L` that follows a number.

/// The header as `_filter_header` returns it, for what `parse_literal` does with it: an `L` after
/// a number (`3L`, `3 L`, or across a line continuation) becomes a space; a last line of only
/// spaces, tabs and form feeds (which `tokenize` stops at) goes; the first line's indentation
/// (which `untokenize` writes as spaces, which `literal_eval` strips) goes. The rest is unchanged.
pub fn py2_filter(text: &str) -> String {
    let s = text.trim_start_matches([' ', '\t', '\x0c']);
    let mut v = s.as_bytes().to_vec();
    let n = v.len();
    let mut i = 0;
    let mut after_number = false;
    // Where the line after the last newline token starts.
    let mut last_line = None;
    while i < n {
        let c = v[i];
        let rest = &s.as_bytes()[i..];
        match c {
            b' ' | b'\t' | b'\x0c' => i += 1,
            // A line continuation is no token.
            b'\\' if rest[1..].starts_with(b"\n") => i += 2,
            b'\\' if rest[1..].starts_with(b"\r\n") => i += 3,
            b'#' => {
                i += rest.iter().take_while(|&&c| c != b'\n' && c != b'\r').count();
                after_number = false;
            }
            b'\n' | b'\r' if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") => {
                i += if c == b'\r' { 2 } else { 1 };
                after_number = false;
                last_line = Some(i);
            }
            b'0'..=b'9' => {
                i += py_number_end(rest);
                after_number = true;
            }
            b'.' if rest.get(1).is_some_and(u8::is_ascii_digit) => {
                i += py_number_end(rest);
                after_number = true;
            }
            b'\'' | b'"' => {
                i += skip_py_string(rest);
                after_number = false;
            }
            _ if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                // A word (`\w+`), or an error token for any other character.
                let word_len = s[i..]
                    .char_indices()
                    .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
                    .map_or(rest.len(), |(k, _)| k);
                if word_len == 0 {
                    i += s[i..].chars().next().map_or(1, char::len_utf8);
                    after_number = false;
                    continue;
                }
                let word = &rest[..word_len];
                let prefix = matches!(
                    word.to_ascii_lowercase().as_slice(),
                    b"b" | b"r" | b"u" | b"f" | b"br" | b"rb" | b"fr" | b"rf"
                );
                if prefix && matches!(rest.get(word_len), Some(b'\'' | b'"')) {
                    i += word_len + skip_py_string(&rest[word_len..]);
                    after_number = false;
                } else if word == b"L" && after_number {
                    v[i] = b' '; // and the number stays the last token
                    i += 1;
                } else {
                    i += word_len;
                    after_number = false;
                }
            }
            _ => {
                i += 1;
                after_number = false;
            }
        }
    }
    if let Some(k) = last_line {
        if k < n && v[k..].iter().all(|c| matches!(c, b' ' | b'\t' | b'\x0c')) {
            v.truncate(k);
        }
    }
    String::from_utf8(v).unwrap_or_default()
}

/// The length of the string literal at the start of `v` (its quote first), as `tokenize` reads
/// it; a one-line string with no closing quote is just its quote (an error token).
pub fn skip_py_string(v: &[u8]) -> usize {
    let q = v[0];
    let triple = v[1..].starts_with(&[q, q]);
    let mut k = if triple { 3 } else { 1 };
    let mut quotes = 0;
    while k < v.len() {
        let c = v[k];
        k += 1;
        if c == q {
            quotes += 1;
            if !triple || quotes == 3 {
                return k;
            }
            continue;
        }
        quotes = 0;
        if c == b'\\' {
            k += if v[k..].starts_with(b"\r\n") { 2 } else { 1 };
        } else if c == b'\n' && !triple {
            break;
        }
    }
    if triple {
        v.len()
    } else {
        1
    }
}

/// The length of the number at the start of `v`, by `tokenize`'s `Number` pattern (imaginary,
/// then float, then integer literals; the first that matches).
pub fn py_number_end(v: &[u8]) -> usize {
    let i = 0;
    let digit = |k: usize| v.get(k).is_some_and(u8::is_ascii_digit);
    // [0-9](?:_?[0-9])*
    let digitpart = |k: usize| -> Option<usize> {
        if !digit(k) {
            return None;
        }
        let mut k = k + 1;
        loop {
            if digit(k) {
                k += 1;
            } else if v.get(k) == Some(&b'_') && digit(k + 1) {
                k += 2;
            } else {
                return Some(k);
            }
        }
    };
    let exponent = |k: usize| -> Option<usize> {
        if !matches!(v.get(k), Some(b'e' | b'E')) {
            return None;
        }
        let k = k + 1 + matches!(v.get(k + 1), Some(b'+' | b'-')) as usize;
        digitpart(k)
    };
    // Pointfloat without its exponent.
    let point = |k: usize| -> Option<usize> {
        match digitpart(k) {
            Some(j) if v.get(j) == Some(&b'.') => Some(digitpart(j + 1).unwrap_or(j + 1)),
            Some(_) => None,
            None if v.get(k) == Some(&b'.') => digitpart(k + 1),
            None => None,
        }
    };
    let imag = |k: usize| v.get(k).is_some_and(|c| matches!(c, b'j' | b'J'));
    // Imagnumber: [0-9](?:_?[0-9])*[jJ] | Floatnumber[jJ]
    let mut floats = Vec::new();
    if let Some(p) = point(i) {
        if let Some(e) = exponent(p) {
            floats.push(e);
        }
        floats.push(p);
    }
    if let Some(e) = digitpart(i).and_then(exponent) {
        floats.push(e);
    }
    if let Some(d) = digitpart(i).filter(|&d| imag(d)) {
        return d + 1;
    }
    if let Some(&f) = floats.iter().find(|&&f| imag(f)) {
        return f + 1;
    }
    if let Some(&f) = floats.first() {
        return f;
    }
    // Intnumber: 0[xX](?:_?[0-9a-fA-F])+ | 0[bB](?:_?[01])+ | 0[oO](?:_?[0-7])+ | Decnumber
    let based = |radix: u32| -> Option<usize> {
        let mut k = i + 2;
        let is = |k: usize| v.get(k).is_some_and(|&c| (c as char).is_digit(radix));
        loop {
            if is(k) {
                k += 1;
            } else if v.get(k) == Some(&b'_') && is(k + 1) {
                k += 2;
            } else {
                return (k > i + 2).then_some(k);
            }
        }
    };
    if v[i] == b'0' {
        let radix = match v.get(i + 1) {
            Some(b'x' | b'X') => 16,
            Some(b'b' | b'B') => 2,
            Some(b'o' | b'O') => 8,
            _ => 0,
        };
        if let Some(k) = (radix != 0).then(|| based(radix)).flatten() {
            return k;
        }
        // 0(?:_?0)*
        let mut k = i + 1;
        loop {
            if v.get(k) == Some(&b'0') {
                k += 1;
            } else if v.get(k) == Some(&b'_') && v.get(k + 1) == Some(&b'0') {
                k += 2;
            } else {
                return k;
            }
        }
    }
    digitpart(i).unwrap_or(i + 1)
}
