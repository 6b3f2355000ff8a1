//! A pickle machine that reads data and never runs code. It implements the opcodes of pickle
//! protocols 0–5 that data needs (the protocol-2 subset `torch.save` writes, plus their newer
//! and older spellings), resolves `GLOBAL`/`STACK_GLOBAL`/`INST` through the allow-list in
//! `globals` (anything else is [`TorchFileError::ForbiddenGlobal`] at that opcode),
//! and turns `REDUCE`/`NEWOBJ`/`BUILD` on allowed names into plain values.
//!
//! Safety against hostile input: lengths are checked against the remaining input before any
//! allocation ([`super::input::Input`]); the machine itself is a loop (no recursion); shared
//! containers live in an arena that is emptied at the end, so neither cycles nor deep nesting
//! can leak or overflow the stack when dropped; the final conversion to [`PickleValue`] stops
//! at [`MAX_DEPTH`] levels and at a value budget proportional to the input (shared
//! references could otherwise expand exponentially). Reference: CPython's
//! `Lib/pickle.py` (`_Unpickler`) and `Lib/pickletools.py`.

mod containers;
mod opcode;
mod reduce;
mod run;
mod values;

use std::{cell::RefCell, collections::HashMap, io::Read, path::Path, rc::Rc};

use super::{
    error::{Result, TorchFileError},
    globals::{GlobalKind, classify},
    input::Input,
    value::{PickleValue, StorageRef, TensorRef},
};

/// Deepest nesting of containers the reader converts. Torch files nest a handful of levels
/// (a ParameterDict's state is five deep); the limit keeps recursion far from the stack's end.
pub const MAX_DEPTH: usize = 200;

type Shared<T> = Rc<RefCell<T>>;

/// A value on the machine's stack. Containers are shared (pickle's memo makes aliases and
/// mutates containers after memoizing them), which is why this is not [`PickleValue`].
#[derive(Clone)]
enum Val {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    List(Shared<Vec<Val>>),
    Tuple(Shared<Vec<Val>>),
    Set(Shared<Vec<Val>>),
    Dict(Shared<DictVal>),
    Global(Rc<GlobalVal>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    Object(Shared<ObjVal>),
}

struct GlobalVal {
    module: String,
    name: String,
    kind: GlobalKind,
}

#[derive(Default)]
struct DictVal {
    items: Vec<(Val, Val)>,
    /// Position of each hashable key, so a repeated key replaces its value as in Python.
    index: HashMap<HashKey, usize>,
}

#[derive(Hash, PartialEq, Eq)]
enum HashKey {
    None,
    Int(i64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

#[derive(Default)]
struct ObjVal {
    class: String,
    args: Vec<Val>,
    state: Option<Val>,
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::None => "None",
            Val::Bool(_) => "bool",
            Val::Int(_) | Val::BigInt(_) => "int",
            Val::Float(_) => "float",
            Val::Str(_) => "str",
            Val::Bytes(_) => "bytes",
            Val::List(_) => "list",
            Val::Tuple(_) => "tuple",
            Val::Set(_) => "set",
            Val::Dict(_) => "dict",
            Val::Global(_) => "global",
            Val::Storage(_) => "storage",
            Val::Tensor(_) => "tensor",
            Val::Object(_) => "object",
        }
    }

    fn hash_key(&self) -> Option<HashKey> {
        Some(match self {
            Val::None => HashKey::None,
            // Python: True == 1, so they are one key.
            Val::Bool(b) => HashKey::Int(i64::from(*b)),
            Val::Int(i) => HashKey::Int(*i),
            Val::Str(s) => HashKey::Str(s.clone()),
            Val::Bytes(b) => HashKey::Bytes(b.clone()),
            _ => return None,
        })
    }
}

impl DictVal {
    fn insert(&mut self, key: Val, value: Val) {
        match key.hash_key() {
            Some(h) => match self.index.get(&h) {
                Some(&i) => self.items[i].1 = value,
                None => {
                    self.index.insert(h, self.items.len());
                    self.items.push((key, value));
                }
            },
            None => self.items.push((key, value)),
        }
    }
}

/// The result of reading one pickle stream.
pub(super) struct Unpickled {
    /// The root value.
    pub value: PickleValue,
    /// Every storage named by a persistent id, in order of appearance (with repeats).
    pub storages: Vec<StorageRef>,
    /// Bytes of input the stream used, up to and including `STOP`.
    pub consumed: u64,
}

/// Unpickles one in-memory pickle stream as data. `label` names the source in errors.
///
/// # Errors
/// [`TorchFileError::ForbiddenGlobal`] for a global outside the allow-list,
/// [`TorchFileError::Truncated`] when the stream ends early, [`TorchFileError::Pickle`] for
/// malformed streams, [`TorchFileError::LimitExceeded`] for data nested deeper than
/// [`MAX_DEPTH`] or expanding past the value budget.
pub fn unpickle(bytes: &[u8], label: &Path) -> Result<PickleValue> {
    let mut reader = bytes;
    Ok(unpickle_from(&mut reader, bytes.len() as u64, label)?.value)
}

/// Unpickles one stream from `reader`, which holds at most `available` more bytes.
pub(super) fn unpickle_from(
    reader: &mut dyn Read,
    available: u64,
    path: &Path,
) -> Result<Unpickled> {
    let mut vm = Vm {
        input: Input::new(reader, available, path),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        arena: Vec::new(),
        storages: Vec::new(),
        op_pos: 0,
    };
    let result = vm.run().and_then(|root| {
        let mut budget = (available.saturating_mul(4)).max(1 << 20);
        vm.convert(&root, 0, &mut budget)
    });
    vm.clear_arena();
    Ok(Unpickled {
        value: result?,
        storages: std::mem::take(&mut vm.storages),
        consumed: vm.input.pos(),
    })
}

struct Vm<'a> {
    input: Input<'a>,
    stack: Vec<Val>,
    /// Stack heights at each `MARK` (Python's metastack).
    marks: Vec<usize>,
    memo: HashMap<u32, Val>,
    /// Every container ever made, emptied at the end (breaks cycles, flattens drops).
    arena: Vec<Val>,
    storages: Vec<StorageRef>,
    /// Offset of the opcode being executed, for error messages.
    op_pos: u64,
}

impl Vm<'_> {
    fn err(&self, reason: impl Into<String>) -> TorchFileError {
        TorchFileError::Pickle {
            path: self.input.path().to_path_buf(),
            offset: self.op_pos,
            reason: reason.into(),
        }
    }

    fn unsupported(&self, what: impl Into<String>) -> TorchFileError {
        TorchFileError::Unsupported {
            path: self.input.path().to_path_buf(),
            what: what.into(),
        }
    }

    fn clear_arena(&mut self) {
        self.stack.clear();
        self.memo.clear();
        for v in std::mem::take(&mut self.arena) {
            match v {
                Val::List(c) | Val::Tuple(c) | Val::Set(c) => {
                    drop(std::mem::take(&mut *c.borrow_mut()))
                }
                Val::Dict(d) => drop(std::mem::take(&mut *d.borrow_mut())),
                Val::Object(o) => drop(std::mem::take(&mut *o.borrow_mut())),
                _ => {}
            }
        }
    }

    fn track(&mut self, v: Val) -> Val {
        self.arena.push(v.clone());
        v
    }

    fn new_list(&mut self, items: Vec<Val>) -> Val {
        self.track(Val::List(Rc::new(RefCell::new(items))))
    }

    fn new_tuple(&mut self, items: Vec<Val>) -> Val {
        self.track(Val::Tuple(Rc::new(RefCell::new(items))))
    }

    fn new_set(&mut self, items: Vec<Val>) -> Val {
        self.track(Val::Set(Rc::new(RefCell::new(items))))
    }

    fn new_dict(&mut self) -> (Val, Shared<DictVal>) {
        let d = Rc::new(RefCell::new(DictVal::default()));
        (self.track(Val::Dict(d.clone())), d)
    }

    fn new_object(&mut self, class: String, args: Vec<Val>) -> Val {
        let o = ObjVal {
            class,
            args,
            state: None,
        };
        self.track(Val::Object(Rc::new(RefCell::new(o))))
    }

    fn push(&mut self, v: Val) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Val> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.err("pop below the current MARK"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top(&self) -> Result<&Val> {
        self.stack.last().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Val>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.err("no MARK to pop to"))?;
        if m > self.stack.len() {
            return Err(self.err("MARK above the stack"));
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_get(&self, idx: u32) -> Result<Val> {
        self.memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("memo key {idx} not defined")))
    }

    fn memo_put(&mut self, idx: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn text_str(&self, line: Vec<u8>, what: &str) -> Result<String> {
        String::from_utf8(line).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }

    fn text_u32(&self, line: Vec<u8>, what: &str) -> Result<u32> {
        let s = self.text_str(line, what)?;
        s.trim()
            .parse()
            .map_err(|_| self.err(format!("{what}: bad index `{s}`")))
    }

    /// `GLOBAL module name`: allow-listed or refused right here.
    fn global(&mut self, module: String, name: String) -> Result<Val> {
        match classify(&module, &name) {
            Some(kind) => Ok(Val::Global(Rc::new(GlobalVal { module, name, kind }))),
            None => Err(TorchFileError::ForbiddenGlobal {
                path: self.input.path().to_path_buf(),
                module,
                name,
            }),
        }
    }

    fn string(&mut self, bytes: Vec<u8>) -> Result<Val> {
        let s = String::from_utf8(bytes).map_err(|_| self.err("string is not valid UTF-8"))?;
        Ok(Val::Str(s.into()))
    }

    fn long(&self, bytes: Vec<u8>) -> Val {
        if bytes.len() <= 8 {
            // Little-endian two's complement, sign-extended to 64 bits.
            let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                0xFF
            } else {
                0
            };
            let mut b = [fill; 8];
            b[..bytes.len()].copy_from_slice(&bytes);
            Val::Int(i64::from_le_bytes(b))
        } else {
            Val::BigInt(bytes.into())
        }
    }

    fn extend_list(&mut self, items: Vec<Val>) -> Result<()> {
        match self.top()? {
            Val::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(self.err(format!("APPEND on a {}", other.kind()))),
        }
    }

    fn fill_dict(&self, d: &Shared<DictVal>, items: Vec<Val>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for a dict"));
        }
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.insert(k, v);
        }
        Ok(())
    }

    fn tuple_items(&self, v: &Val, what: &str) -> Result<Vec<Val>> {
        match v {
            Val::Tuple(t) | Val::List(t) => Ok(t.borrow().clone()),
            other => Err(self.err(format!("{what} must be a tuple, found a {}", other.kind()))),
        }
    }

    fn int(&self, v: &Val, what: &str) -> Result<i64> {
        match v {
            Val::Int(i) => Ok(*i),
            Val::Bool(b) => Ok(i64::from(*b)),
            other => Err(self.err(format!("{what} must be an int, found a {}", other.kind()))),
        }
    }

    fn usize_of(&self, v: &Val, what: &str) -> Result<usize> {
        let i = self.int(v, what)?;
        usize::try_from(i).map_err(|_| self.err(format!("{what} is negative ({i})")))
    }

    fn usizes(&self, v: &Val, what: &str) -> Result<Vec<usize>> {
        self.tuple_items(v, what)?
            .iter()
            .map(|x| self.usize_of(x, what))
            .collect()
    }

    /// Turns the machine's shared values into owned [`PickleValue`]s, with a depth limit and a
    /// budget of values (aliases are copied, so a pickle of nested aliases could otherwise
    /// expand exponentially).
    fn convert(&self, v: &Val, depth: usize, budget: &mut u64) -> Result<PickleValue> {
        let path = || self.input.path().to_path_buf();
        if depth > MAX_DEPTH {
            return Err(TorchFileError::LimitExceeded {
                path: path(),
                limit: MAX_DEPTH as u64,
                what: "nesting levels",
            });
        }
        if *budget == 0 {
            return Err(TorchFileError::LimitExceeded {
                path: path(),
                limit: (self.input.pos().saturating_mul(4)).max(1 << 20),
                what: "values",
            });
        }
        *budget -= 1;
        let items = |xs: &[Val], budget: &mut u64| -> Result<Vec<PickleValue>> {
            xs.iter()
                .map(|x| self.convert(x, depth + 1, budget))
                .collect()
        };
        Ok(match v {
            Val::None => PickleValue::None,
            Val::Bool(b) => PickleValue::Bool(*b),
            Val::Int(i) => PickleValue::Int(*i),
            Val::BigInt(b) => PickleValue::BigInt(b.to_vec()),
            Val::Float(f) => PickleValue::Float(*f),
            Val::Str(s) => PickleValue::String(s.to_string()),
            Val::Bytes(b) => PickleValue::Bytes(b.to_vec()),
            Val::List(l) => PickleValue::List(items(&l.borrow(), budget)?),
            Val::Tuple(t) => PickleValue::Tuple(items(&t.borrow(), budget)?),
            Val::Set(s) => PickleValue::Set(items(&s.borrow(), budget)?),
            Val::Dict(d) => {
                let d = d.borrow();
                let mut out = Vec::with_capacity(d.items.len());
                for (k, v) in &d.items {
                    out.push((
                        self.convert(k, depth + 1, budget)?,
                        self.convert(v, depth + 1, budget)?,
                    ));
                }
                PickleValue::Dict(out)
            }
            Val::Global(g) => PickleValue::Global {
                module: g.module.clone(),
                name: g.name.clone(),
            },
            Val::Storage(s) => PickleValue::Storage((**s).clone()),
            Val::Tensor(t) => PickleValue::Tensor((**t).clone()),
            Val::Object(o) => {
                let o = o.borrow();
                PickleValue::Object {
                    class: o.class.clone(),
                    args: items(&o.args, budget)?,
                    state: match &o.state {
                        Some(s) => Some(Box::new(self.convert(s, depth + 1, budget)?)),
                        None => None,
                    },
                }
            }
        })
    }
}
