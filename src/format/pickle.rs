//! A restricted unpickler and a small pickler: what a PyTorch tensor container needs, nothing
//! that runs code. It reads pickle protocols 2–5 into a tree of plain values (dict, OrderedDict,
//! list, tuple, int, float, str, bytes, bool, None) and tensor records; the only callables it
//! knows are `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`/`_rebuild_parameter`
//! and `_codecs.encode` (how protocol 2 spells `bytes`), the only classes the typed storages
//! named in persistent ids. Any other global is refused by name when it is loaded, before
//! anything could call it, as `torch.load(weights_only=True)` refuses what its allow-list lacks;
//! `INST`, `OBJ`, `NEWOBJ` and `BUILD` on anything but an `OrderedDict` are refused too.
//!
//! Values live in an arena and the stack and memo hold indices into it, so a memoized container
//! filled after it was memoized is seen filled (pickle's identity semantics), `BINGET` costs
//! nothing however large the value, and no recursion happens while reading. The arena grows at
//! most a few nodes per opcode, and the pickle's size is bounded by the caller.

use crate::dtype::DType;
use std::fmt;

/// An index into the arena of a [`Pickle`].
pub type Id = usize;

/// One value of the tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    /// A dict in insertion order; `ordered`: a `collections.OrderedDict`, whose `BUILD` state
    /// (a state dict's `_metadata`) is kept in `state`.
    Dict {
        items: Vec<(Id, Id)>,
        ordered: bool,
        state: Option<Id>,
    },
    Tensor(TensorRecord),
    /// A storage named by a persistent id.
    Storage(StorageRecord),
    /// One of the allowed globals, waiting for its `REDUCE`.
    Global(Global),
}

/// What `torch._utils._rebuild_tensor_v2` was called with.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRecord {
    pub storage: StorageRecord,
    /// In elements of the storage.
    pub offset: u64,
    pub shape: Vec<u64>,
    pub strides: Vec<u64>,
    pub requires_grad: bool,
    /// Wrapped by `torch._utils._rebuild_parameter` (an `nn.Parameter`).
    pub parameter: bool,
}

/// A persistent id `('storage', torch.XStorage, key, location, numel)`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRecord {
    pub kind: StorageKind,
    /// The record's name in the archive: `data/<key>`.
    pub key: String,
    pub numel: u64,
}

/// The typed storages relu reads. `BoolStorage` is read as uint8 (0 or 1 per byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    Float,
    Half,
    BFloat16,
    Double,
    Long,
    Int,
    Short,
    Char,
    Byte,
    Bool,
}

impl StorageKind {
    fn of_name(name: &str) -> Option<StorageKind> {
        use StorageKind::*;
        Some(match name {
            "FloatStorage" => Float,
            "HalfStorage" => Half,
            "BFloat16Storage" => BFloat16,
            "DoubleStorage" => Double,
            "LongStorage" => Long,
            "IntStorage" => Int,
            "ShortStorage" => Short,
            "CharStorage" => Char,
            "ByteStorage" => Byte,
            "BoolStorage" => Bool,
            _ => return None,
        })
    }

    /// The element type relu computes on.
    pub fn dtype(self) -> DType {
        use StorageKind::*;
        match self {
            Float => DType::F32,
            Half => DType::F16,
            BFloat16 => DType::BF16,
            Double => DType::F64,
            Long => DType::I64,
            Int => DType::I32,
            Short => DType::I16,
            Char => DType::I8,
            Byte | Bool => DType::U8,
        }
    }

    /// The storage that holds `dt`, if PyTorch has one (it has no uint16/32/64 typed storage).
    pub fn of_dtype(dt: DType) -> Option<StorageKind> {
        use StorageKind::*;
        Some(match dt {
            DType::F32 => Float,
            DType::F16 => Half,
            DType::BF16 => BFloat16,
            DType::F64 => Double,
            DType::I64 => Long,
            DType::I32 => Int,
            DType::I16 => Short,
            DType::I8 => Char,
            DType::U8 => Byte,
            DType::U16 | DType::U32 | DType::U64 => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use StorageKind::*;
        match self {
            Float => "FloatStorage",
            Half => "HalfStorage",
            BFloat16 => "BFloat16Storage",
            Double => "DoubleStorage",
            Long => "LongStorage",
            Int => "IntStorage",
            Short => "ShortStorage",
            Char => "CharStorage",
            Byte => "ByteStorage",
            Bool => "BoolStorage",
        }
    }
}

/// The callables and classes a tensor container may name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    CodecsEncode,
    Storage(StorageKind),
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

type R<T> = Result<T, Refused>;

fn refuse<T>(why: impl Into<String>) -> R<T> {
    Err(Refused(why.into()))
}

/// The longest string, bytes or collection one opcode may create (in bytes or items).
const MAX_LEN: u64 = 1 << 30;
/// The most values (and stack and memo entries) a pickle may make: a bound on memory (about
/// 50 bytes each) far above a state dict's needs (some ten per tensor).
pub const MAX_VALUES: usize = 8_000_000;
/// How deep walks over the tree may go (nesting of containers; a list holding itself stops here).
pub const MAX_DEPTH: usize = 256;

/// A read pickle: the arena and the id of its root value.
#[derive(Debug)]
pub struct Pickle {
    pub nodes: Vec<Value>,
    pub root: Id,
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Value {
        &self.nodes[id]
    }
}

/// The message for a global that is not on the allow-list: what it is, when relu knows.
fn not_allowed(module: &str, name: &str) -> Refused {
    let full = format!("{module}.{name}");
    let what = match (module, name) {
        (_, n) if n.contains("sparse") => "a sparse tensor, which relu does not read",
        (_, n) if n.contains("qtensor") || n.starts_with("QInt") || n.starts_with("QUInt") => {
            "a quantized tensor, which relu does not read"
        }
        (_, n) if n.starts_with("Complex") => "a complex tensor, which relu does not read",
        (_, n) if n.contains("nested") => "a nested tensor, which relu does not read",
        ("torch", n) if n.ends_with("Storage") => "a storage type relu does not read",
        ("torch._utils", _) | ("torch._tensor", _) => "a tensor kind relu does not read (only plain dense tensors)",
        _ => "not allowed: relu runs no code from a pickle and reads only tensors, containers and plain values",
    };
    Refused(format!("the pickle loads global '{full}': {what}"))
}

fn global(module: &str, name: &str) -> R<Global> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("torch", n) => match StorageKind::of_name(n) {
            Some(k) => Global::Storage(k),
            None => return Err(not_allowed(module, name)),
        },
        _ => return Err(not_allowed(module, name)),
    })
}

/// Reads a pickle. Never panics, never calls anything; every refusal says why.
pub fn read(data: &[u8]) -> R<Pickle> {
    Reader { data, pos: 0, nodes: Vec::new(), stack: Vec::new(), marks: Vec::new(), memo: Default::default() }.run()
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Value>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Id>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> R<&'a [u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return refuse("the pickle ends in the middle of an opcode (truncated)");
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> R<[u8; N]> {
        Ok(self.take(N as u64)?.try_into().expect("N bytes"))
    }

    fn line(&mut self) -> R<&'a str> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&c| c == b'\n') else {
            return refuse("the pickle ends inside a text line (truncated)");
        };
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| Refused("a global's name is not UTF-8 text".into()))
    }

    fn push(&mut self, v: Value) -> R<()> {
        let id = self.new_node(v);
        self.stack.push(id);
        Ok(())
    }

    fn new_node(&mut self, v: Value) -> Id {
        self.nodes.push(v);
        self.nodes.len() - 1
    }

    fn pop(&mut self) -> R<Id> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return refuse("malformed pickle: an opcode pops past a MARK");
        }
        self.stack.pop().ok_or_else(|| Refused("malformed pickle: the stack is empty".into()))
    }

    fn top(&self) -> R<Id> {
        match self.stack.last() {
            Some(&id) if self.marks.last().is_none_or(|&m| m < self.stack.len()) => Ok(id),
            _ => refuse("malformed pickle: the stack is empty"),
        }
    }

    fn pop_mark(&mut self) -> R<Vec<Id>> {
        let Some(m) = self.marks.pop() else {
            return refuse("malformed pickle: no MARK to pop to");
        };
        Ok(self.stack.split_off(m))
    }

    fn str_of(&mut self, b: &[u8]) -> R<()> {
        match std::str::from_utf8(b) {
            Ok(s) => self.push(Value::Str(s.to_string())),
            Err(_) => refuse("malformed pickle: a string is not valid UTF-8"),
        }
    }

    fn len_of(n: u64) -> R<u64> {
        if n > MAX_LEN {
            return refuse(format!("the pickle declares a {n}-byte string or buffer (over 1 GiB)"));
        }
        Ok(n)
    }

    fn memo_put(&mut self, key: u64) -> R<()> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> R<()> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(id);
                Ok(())
            }
            None => refuse(format!("malformed pickle: memo key {key} was never stored")),
        }
    }

    fn int(&self, id: Id, what: &str) -> R<i64> {
        match &self.nodes[id] {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(*b as i64),
            _ => refuse(format!("malformed tensor record: {what} is not an integer")),
        }
    }

    fn ints(&self, id: Id, what: &str) -> R<Vec<u64>> {
        match &self.nodes[id] {
            Value::Tuple(v) | Value::List(v) => v
                .iter()
                .map(|&i| {
                    let n = self.int(i, what)?;
                    u64::try_from(n).map_err(|_| Refused(format!("malformed tensor record: a negative {what}")))
                })
                .collect(),
            _ => refuse(format!("malformed tensor record: {what} is not a tuple")),
        }
    }

    fn append(&mut self, list: Id, items: Vec<Id>) -> R<()> {
        match &mut self.nodes[list] {
            Value::List(v) => {
                v.extend(items);
                Ok(())
            }
            Value::Tuple(_) => refuse("malformed pickle: APPEND to a tuple"),
            _ => refuse("the pickle appends to an object that is not a list (relu reads only plain containers)"),
        }
    }

    fn set_items(&mut self, dict: Id, kv: Vec<Id>) -> R<()> {
        if !kv.len().is_multiple_of(2) {
            return refuse("malformed pickle: SETITEMS with an odd number of items");
        }
        for pair in kv.chunks(2) {
            // a key must be hashable: plain values only, never a container or a tensor
            match &self.nodes[pair[0]] {
                Value::None | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) | Value::Bytes(_) => {}
                Value::Tuple(_) => {}
                _ => return refuse("malformed pickle: a dict key that is not a plain value"),
            }
        }
        // a repeated key replaces the value in place, as Python's dict keeps the first position
        let keys: Vec<(Id, Id)> = kv.chunks(2).map(|p| (p[0], p[1])).collect();
        for (k, v) in keys {
            let existing = match &self.nodes[dict] {
                Value::Dict { items, .. } => items.iter().position(|&(k2, _)| same_key(&self.nodes, k2, k, 0)),
                _ => {
                    return refuse(
                        "the pickle sets items on an object that is not a dict (relu reads only plain containers)",
                    )
                }
            };
            if let Value::Dict { items, .. } = &mut self.nodes[dict] {
                match existing {
                    Some(i) => items[i].1 = v,
                    None => items.push((k, v)),
                }
            }
        }
        Ok(())
    }

    /// `REDUCE`: only the allowed callables, each with the arguments it takes.
    fn reduce(&mut self, f: Id, args: Id) -> R<Value> {
        let Value::Global(g) = self.nodes[f].clone() else {
            return refuse(
                "the pickle calls something that is not an allowed function (relu runs no code from a pickle)",
            );
        };
        let Value::Tuple(a) = self.nodes[args].clone() else {
            return refuse("malformed pickle: REDUCE's arguments are not a tuple");
        };
        match g {
            Global::OrderedDict if a.is_empty() => Ok(Value::Dict { items: Vec::new(), ordered: true, state: None }),
            Global::OrderedDict => {
                refuse("OrderedDict called with arguments (torch.save writes it empty, then fills it)")
            }
            Global::CodecsEncode => match a.as_slice() {
                [s, enc] => match (&self.nodes[*s], &self.nodes[*enc]) {
                    (Value::Str(s), Value::Str(e)) if e == "latin1" || e == "latin-1" => {
                        let mut out = Vec::with_capacity(s.len());
                        for c in s.chars() {
                            match u8::try_from(c as u32) {
                                Ok(b) => out.push(b),
                                Err(_) => return refuse("_codecs.encode of a character outside latin-1"),
                            }
                        }
                        Ok(Value::Bytes(out))
                    }
                    _ => refuse("_codecs.encode is read only as protocol 2 writes bytes: (str, 'latin1')"),
                },
                _ => refuse("_codecs.encode with other than two arguments"),
            },
            Global::RebuildTensorV2 => {
                if a.len() < 4 {
                    return refuse("malformed tensor record: _rebuild_tensor_v2 with fewer than 4 arguments");
                }
                let Value::Storage(storage) = self.nodes[a[0]].clone() else {
                    return refuse("malformed tensor record: its first argument is not a storage");
                };
                let offset = u64::try_from(self.int(a[1], "the storage offset")?)
                    .map_err(|_| Refused("malformed tensor record: a negative storage offset".into()))?;
                let shape = self.ints(a[2], "size")?;
                let strides = self.ints(a[3], "stride")?;
                if shape.len() != strides.len() {
                    return refuse(format!(
                        "malformed tensor record: {} sizes but {} strides",
                        shape.len(),
                        strides.len()
                    ));
                }
                let requires_grad = match a.get(4).map(|&i| &self.nodes[i]) {
                    Some(Value::Bool(b)) => *b,
                    _ => false,
                };
                Ok(Value::Tensor(TensorRecord { storage, offset, shape, strides, requires_grad, parameter: false }))
            }
            Global::RebuildParameter => match a.first().map(|&i| self.nodes[i].clone()) {
                Some(Value::Tensor(mut t)) => {
                    t.parameter = true;
                    if let Some(Value::Bool(b)) = a.get(1).map(|&i| &self.nodes[i]) {
                        t.requires_grad = *b;
                    }
                    Ok(Value::Tensor(t))
                }
                _ => refuse("malformed pickle: _rebuild_parameter of something that is not a tensor"),
            },
            Global::Storage(k) => refuse(format!(
                "the pickle calls torch.{} directly (torch.save names storages by persistent id)",
                k.name()
            )),
        }
    }

    fn persistent(&mut self, pid: Id) -> R<Value> {
        let Value::Tuple(t) = self.nodes[pid].clone() else {
            return refuse(
                "a persistent id that is not a tuple (torch.save writes ('storage', type, key, location, numel))",
            );
        };
        match t.iter().map(|&i| &self.nodes[i]).collect::<Vec<_>>().as_slice() {
            [Value::Str(tag), Value::Global(Global::Storage(kind)), key, _location, numel] if tag == "storage" => {
                let key = match key {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    _ => return refuse("a storage key that is not a string"),
                };
                let numel = match numel {
                    Value::Int(n) if *n >= 0 => *n as u64,
                    _ => return refuse("a storage's element count is not a non-negative integer"),
                };
                Ok(Value::Storage(StorageRecord { kind: *kind, key, numel }))
            }
            [Value::Str(tag), ..] if tag == "storage" => refuse(
                "a storage persistent id of another shape than ('storage', torch.XStorage, key, location, numel)",
            ),
            _ => refuse("a persistent id that is not a storage (torch.save names only storages)"),
        }
    }

    fn run(mut self) -> R<Pickle> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return refuse(format!("pickle protocol {p} (relu reads protocols 2 to 5)"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Pickle { nodes: self.nodes, root });
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Value::Int(v as i64))?
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as u64 } else { u32::from_le_bytes(self.le()?) as u64 };
                    let b = self.take(Self::len_of(n)?)?;
                    if b.len() > 8 {
                        // sign-extension bytes beyond 64 bits are allowed if they carry no value
                        let neg = b.last().is_some_and(|&c| c & 0x80 != 0);
                        let fill = if neg { 0xff } else { 0 };
                        if b[8..].iter().any(|&c| c != fill) || (b[7] & 0x80 != 0) != neg {
                            return refuse("an integer wider than 64 bits");
                        }
                    }
                    let mut v: i64 = if b.last().is_some_and(|&c| c & 0x80 != 0) { -1 } else { 0 };
                    for (i, &c) in b.iter().take(8).enumerate() {
                        v &= !(0xff << (8 * i));
                        v |= (c as i64) << (8 * i);
                    }
                    self.push(Value::Int(v))?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Value::Float(v))?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u32::from_le_bytes(self.le()?) as u64,
                        0x8c => self.u8()? as u64,
                        _ => u64::from_le_bytes(self.le()?),
                    };
                    let b = self.take(Self::len_of(n)?)?;
                    self.str_of(b)?
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => u32::from_le_bytes(self.le()?) as u64,
                        b'C' => self.u8()? as u64,
                        _ => u64::from_le_bytes(self.le()?),
                    };
                    let b = self.take(Self::len_of(n)?)?;
                    self.push(Value::Bytes(b.to_vec()))?
                }
                b'U' | b'T' => {
                    // Python 2 `str`: bytes, which Python 3 decodes as ASCII by default
                    let n = if op == b'U' { self.u8()? as u64 } else { u32::from_le_bytes(self.le()?) as u64 };
                    let b = self.take(Self::len_of(n)?)?;
                    if !b.is_ascii() {
                        return refuse("a Python 2 byte string that is not ASCII");
                    }
                    self.str_of(b)?
                }
                b']' => self.push(Value::List(Vec::new()))?,
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b'}' => self.push(Value::Dict { items: Vec::new(), ordered: false, state: None })?,
                b'l' => {
                    let v = self.pop_mark()?;
                    self.push(Value::List(v))?
                }
                b't' => {
                    let v = self.pop_mark()?;
                    self.push(Value::Tuple(v))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(self.pop()?);
                    }
                    v.reverse();
                    self.push(Value::Tuple(v))?
                }
                b'd' => {
                    let kv = self.pop_mark()?;
                    let d = self.new_node(Value::Dict { items: Vec::new(), ordered: false, state: None });
                    self.set_items(d, kv)?;
                    self.stack.push(d);
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.append(l, vec![v])?
                }
                b'e' => {
                    let v = self.pop_mark()?;
                    let l = self.top()?;
                    self.append(l, v)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, vec![k, v])?
                }
                b'u' => {
                    let kv = self.pop_mark()?;
                    let d = self.top()?;
                    self.set_items(d, kv)?
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.le()?) as u64;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.le()?) as u64;
                    self.memo_get(k)?
                }
                b'p' | b'g' => {
                    let line = self.line()?;
                    let k: u64 = line.trim().parse().map_err(|_| Refused("malformed pickle: a bad memo key".into()))?;
                    if op == b'p' {
                        self.memo_put(k)?
                    } else {
                        self.memo_get(k)?
                    }
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    let g = global(&module, &name)?;
                    self.push(Value::Global(g))?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.nodes[module], &self.nodes[name]) {
                        (Value::Str(m), Value::Str(n)) => {
                            let g = global(&m.clone(), &n.clone())?;
                            self.push(Value::Global(g))?
                        }
                        _ => return refuse("malformed pickle: STACK_GLOBAL of something that is not two strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(f, args)?;
                    self.push(v)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.push(v)?
                }
                b'b' => {
                    let state = self.pop()?;
                    let inst = self.top()?;
                    let ok_state = matches!(&self.nodes[state], Value::Dict { .. });
                    match &mut self.nodes[inst] {
                        Value::Dict { ordered: true, state: s, .. } if ok_state => *s = Some(state),
                        Value::Dict { ordered: true, .. } => {
                            return refuse("BUILD of an OrderedDict with a state that is not a dict")
                        }
                        _ => return refuse(
                            "the pickle sets the state of an object (BUILD on anything but an OrderedDict is refused)",
                        ),
                    }
                }
                0x81 | 0x92 => {
                    return refuse(
                        "the pickle creates a class instance (NEWOBJ): relu reads only tensors and plain containers",
                    )
                }
                b'i' | b'o' => {
                    return refuse(
                        "the pickle creates a class instance (INST/OBJ): relu reads only tensors and plain containers",
                    )
                }
                b'P' => return refuse("a text persistent id (PERSID): not a torch.save file"),
                0x82..=0x84 => return refuse("the pickle uses the extension registry (EXT): refused"),
                0x8f..=0x91 => return refuse("sets are not supported in a tensor file"),
                0x97 | 0x98 => return refuse("out-of-band buffers (pickle protocol 5) are not supported"),
                b'I' | b'L' | b'F' | b'S' | b'V' => {
                    return refuse(format!(
                        "text opcode {:?} of pickle protocol 0/1 (torch.save writes protocol 2 or later)",
                        op as char
                    ))
                }
                _ => return refuse(format!("unknown pickle opcode 0x{op:02x} at byte {}", self.pos - 1)),
            }
            if self.nodes.len() + self.stack.len() + self.memo.len() > MAX_VALUES {
                return refuse(format!("the pickle holds more than {MAX_VALUES} values (a limit on memory)"));
            }
        }
    }
}

/// Whether two dict keys are equal as Python compares them (plain values; tuples item by item).
fn same_key(nodes: &[Value], a: Id, b: Id, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match (&nodes[a], &nodes[b]) {
        (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(&p, &q)| same_key(nodes, p, q, depth + 1))
        }
        (Value::Int(x), Value::Bool(y)) | (Value::Bool(y), Value::Int(x)) => *x == *y as i64,
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (x, y) => x == y,
    }
}

/// Writes a pickle, protocol 2, as `torch.save` would for the same tree (no memo: each value
/// written where it appears), in the opcodes `torch.load(weights_only=True)` reads.
pub struct Writer {
    pub out: Vec<u8>,
}

/// What the writer writes.
#[derive(Clone, Debug)]
pub enum Out {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Out>),
    Tuple(Vec<Out>),
    Dict { items: Vec<(Out, Out)>, ordered: bool, state: Option<Box<Out>> },
    Tensor(TensorRecord),
}

impl Writer {
    pub fn new() -> Writer {
        Writer { out: vec![0x80, 2] }
    }

    /// The whole pickle of `v`.
    pub fn pickle(v: &Out) -> Vec<u8> {
        let mut w = Writer::new();
        w.value(v);
        w.out.push(b'.');
        w.out
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, i: i64) {
        if (0..256).contains(&i) {
            self.out.extend_from_slice(&[b'K', i as u8]);
        } else if (0..65536).contains(&i) {
            self.out.push(b'M');
            self.out.extend_from_slice(&(i as u16).to_le_bytes());
        } else if let Ok(v) = i32::try_from(i) {
            self.out.push(b'J');
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.out.extend_from_slice(&[0x8a, 8]);
            self.out.extend_from_slice(&i.to_le_bytes());
        }
    }

    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.out.extend_from_slice(b")R");
    }

    fn value(&mut self, v: &Out) {
        match v {
            Out::None => self.out.push(b'N'),
            Out::Bool(b) => self.out.push(if *b { 0x88 } else { 0x89 }),
            Out::Int(i) => self.int(*i),
            Out::Float(f) => {
                self.out.push(b'G');
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Out::Str(s) => self.str(s),
            Out::Bytes(b) => {
                // as protocol 2 writes bytes, the only way torch's weights_only reader takes them
                self.global("_codecs", "encode");
                self.out.push(b'(');
                self.str(&b.iter().map(|&c| c as char).collect::<String>());
                self.str("latin1");
                self.out.extend_from_slice(b"tR");
            }
            Out::List(items) => {
                self.out.push(b']');
                for chunk in items.chunks(1000) {
                    self.out.push(b'(');
                    chunk.iter().for_each(|x| self.value(x));
                    self.out.push(b'e');
                }
            }
            Out::Tuple(items) => {
                self.out.push(b'(');
                items.iter().for_each(|x| self.value(x));
                self.out.push(b't');
            }
            Out::Dict { items, ordered, state } => {
                if *ordered {
                    self.ordered_dict();
                } else {
                    self.out.push(b'}');
                }
                for chunk in items.chunks(1000) {
                    self.out.push(b'(');
                    for (k, x) in chunk {
                        self.value(k);
                        self.value(x);
                    }
                    self.out.push(b'u');
                }
                if let (true, Some(s)) = (*ordered, state) {
                    self.value(s);
                    self.out.push(b'b');
                }
            }
            Out::Tensor(t) => {
                if t.parameter {
                    self.global("torch._utils", "_rebuild_parameter");
                    self.out.push(b'(');
                }
                self.global("torch._utils", "_rebuild_tensor_v2");
                self.out.extend_from_slice(b"((");
                self.str("storage");
                self.global("torch", t.storage.kind.name());
                self.str(&t.storage.key);
                self.str("cpu");
                self.int(t.storage.numel as i64);
                self.out.extend_from_slice(b"tQ");
                self.int(t.offset as i64);
                self.out.push(b'(');
                t.shape.iter().for_each(|&d| self.int(d as i64));
                self.out.push(b't');
                self.out.push(b'(');
                t.strides.iter().for_each(|&d| self.int(d as i64));
                self.out.push(b't');
                self.out.push(if t.requires_grad && !t.parameter { 0x88 } else { 0x89 });
                self.ordered_dict();
                self.out.extend_from_slice(b"tR");
                if t.parameter {
                    self.out.push(if t.requires_grad { 0x88 } else { 0x89 });
                    self.ordered_dict();
                    self.out.extend_from_slice(b"tR");
                }
            }
        }
    }
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor() -> TensorRecord {
        TensorRecord {
            storage: StorageRecord { kind: StorageKind::Float, key: "0".into(), numel: 6 },
            offset: 0,
            shape: vec![2, 3],
            strides: vec![3, 1],
            requires_grad: false,
            parameter: false,
        }
    }

    #[test]
    fn what_the_writer_writes_reads_back() {
        let mut p = tensor();
        p.parameter = true;
        p.requires_grad = true;
        let tree = Out::Dict {
            items: vec![
                (Out::Str("w".into()), Out::Tensor(tensor())),
                (Out::Str("p".into()), Out::Tensor(p.clone())),
                (
                    Out::Str("l".into()),
                    Out::List(vec![Out::Int(-5), Out::Int(1 << 40), Out::Float(0.5), Out::Bytes(b"ab".to_vec())]),
                ),
                (Out::Int(3), Out::Tuple(vec![Out::None, Out::Bool(true)])),
            ],
            ordered: true,
            state: Some(Box::new(Out::Dict { items: vec![], ordered: false, state: None })),
        };
        let pk = read(&Writer::pickle(&tree)).unwrap();
        let Value::Dict { items, ordered: true, state: Some(_) } = pk.get(pk.root) else { panic!("{pk:?}") };
        assert_eq!(items.len(), 4);
        assert_eq!(pk.get(items[0].1), &Value::Tensor(tensor()));
        assert_eq!(pk.get(items[1].1), &Value::Tensor(p));
        let Value::List(l) = pk.get(items[2].1) else { panic!() };
        let got: Vec<_> = l.iter().map(|&i| pk.get(i).clone()).collect();
        assert_eq!(got, vec![Value::Int(-5), Value::Int(1 << 40), Value::Float(0.5), Value::Bytes(b"ab".to_vec())]);
        assert_eq!(pk.get(items[3].0), &Value::Int(3));
    }

    fn refused(bytes: &[u8]) -> String {
        match read(bytes) {
            Err(Refused(m)) => m,
            Ok(p) => panic!("read: {p:?}"),
        }
    }

    #[test]
    fn a_global_outside_the_allow_list_is_refused_by_name_before_anything_else() {
        // {'x': posix.system('echo pwned')} as pickle writes it
        let m = refused(b"\x80\x02}q\x00X\x01\x00\x00\x00xcposix\nsystem\nX\x0b\x00\x00\x00echo pwned\x85R s.");
        assert!(m.contains("'posix.system'"), "{m}");
        let m = refused(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.");
        assert!(m.contains("'builtins.eval'"), "{m}");
        let m = refused(b"\x80\x02ctorch._utils\n_rebuild_sparse_tensor\n.");
        assert!(m.contains("sparse"), "{m}");
        let m = refused(b"\x80\x02ctorch\nComplexFloatStorage\n.");
        assert!(m.contains("complex"), "{m}");
    }

    #[test]
    fn instances_builds_and_calls_of_non_functions_are_refused() {
        assert!(refused(b"\x80\x02ccollections\nOrderedDict\n)\x81.").contains("class instance"));
        assert!(refused(b"\x80\x02}}b.").contains("BUILD"));
        assert!(refused(b"\x80\x02})R.").contains("not an allowed function"));
        assert!(refused(b"\x80\x02]K\x01\x85R.").contains("not an allowed function"));
        assert!(refused(b"\x80\x02(i__main__\nX\n.").contains("INST"));
        assert!(refused(b"\x80\x02ccollections\nOrderedDict\nK\x01\x85R.").contains("arguments"));
    }

    #[test]
    fn malformed_pickles_are_refused_without_panicking() {
        for bad in [
            &b""[..],
            b"\x80",
            b"\x80\x02",
            b"\x80\x02.",
            b"\x80\x02e.",
            b"\x80\x02(.",
            b"\x80\x02h\x05.",
            b"\x80\x02X\xff\xff\xff\xff",
            b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x80\x02\x8a\x20\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01.",
            b"\x80\x02r\xff\xff\xff\x7f.",
            b"\x80\x02K\x01K\x02s.",
            b"\x80\x02](K\x01u.",
            b"\x80\x02}(]K\x01u.",
            b"\x80\x09.",
            b"\x80\x02cno_newline",
            b"\x80\x02\xff",
            b"\x80\x02(K\x01\x86.",
            b"\x80\x02Q.",
            b"\x80\x02(X\x07\x00\x00\x00storageK\x01tQ.",
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn memoized_containers_are_shared_and_filled_after_memoizing() {
        // L = []; d = {'a': L, 'b': L}; L.append(1): memo before the append, fetched after
        let p = read(b"\x80\x02}q\x00(X\x01\x00\x00\x00a]q\x01K\x01aX\x01\x00\x00\x00bh\x01u.").unwrap();
        let Value::Dict { items, .. } = p.get(p.root) else { panic!() };
        assert_eq!(items[0].1, items[1].1);
        let Value::List(l) = p.get(items[1].1) else { panic!() };
        assert_eq!(l.iter().map(|&i| p.get(i).clone()).collect::<Vec<_>>(), vec![Value::Int(1)]);
    }

    #[test]
    fn big_integers_in_64_bits_are_read_wider_ones_refused() {
        let p = read(b"\x80\x02\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\xff.").unwrap();
        assert_eq!(p.get(p.root), &Value::Int(-1));
        let p = read(b"\x80\x02\x8a\x02\x00\x80.").unwrap();
        assert_eq!(p.get(p.root), &Value::Int(-32768));
        let p = read(b"\x80\x02\x8a\x00.").unwrap();
        assert_eq!(p.get(p.root), &Value::Int(0));
        assert!(read(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.").is_err());
    }
}
