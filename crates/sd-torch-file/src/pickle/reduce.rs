//! The globals-and-calls opcodes, and what the allowed callables mean as data: persistent
//! ids become storages, `REDUCE` on `_rebuild_tensor_v2` becomes a tensor description, on
//! `OrderedDict` a dict, on an opaque class an [`Object`](super::PickleValue::Object) that is
//! never instantiated.

use std::rc::Rc;

use super::opcode::*;
use super::{GlobalKind, Result, StorageRef, TensorRef, Val, Vm};

impl Vm<'_> {
    /// `GLOBAL`, `STACK_GLOBAL`, `INST`, `OBJ`, `REDUCE`, `NEWOBJ`, `BUILD` and persistent
    /// ids: names are resolved through the allow-list, calls are read as data.
    pub(super) fn global_or_call(&mut self, op: u8) -> Result<()> {
        match op {
            GLOBAL => {
                let (module, name) = self.global_lines("GLOBAL")?;
                let v = self.global(module, name)?;
                self.push(v);
            }
            STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Val::Str(module), Val::Str(name)) = (module, name) else {
                    return Err(self.err("STACK_GLOBAL needs two strings"));
                };
                let v = self.global(module.to_string(), name.to_string())?;
                self.push(v);
            }
            INST => {
                let (module, name) = self.global_lines("INST")?;
                let class = self.global(module, name)?;
                let args = self.pop_mark()?;
                let v = self.instantiate(class, args)?;
                self.push(v);
            }
            OBJ => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err(self.err("OBJ without a class"));
                }
                let args = items.split_off(1);
                let class = items.remove(0);
                let v = self.instantiate(class, args)?;
                self.push(v);
            }
            REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let args = self.tuple_items(&args, "REDUCE arguments")?;
                let v = self.call(callable, args)?;
                self.push(v);
            }
            NEWOBJ => {
                let args = self.pop()?;
                let class = self.pop()?;
                let args = self.tuple_items(&args, "NEWOBJ arguments")?;
                let v = self.instantiate(class, args)?;
                self.push(v);
            }
            NEWOBJ_EX => {
                return Err(self.unsupported("NEWOBJ_EX (keyword constructor arguments)"));
            }
            BUILD => {
                let state = self.pop()?;
                self.build(state)?;
            }
            PERSID => {
                let line = self.input.line("PERSID")?;
                let s = self.text_str(line, "PERSID")?;
                return Err(self.unsupported(format!("text persistent id `{s}`")));
            }
            BINPERSID => {
                let pid = self.pop()?;
                let v = self.persistent_load(&pid)?;
                self.push(v);
            }
            EXT1..=EXT4 => return Err(self.unsupported("pickle extension registry (EXT1/2/4)")),
            _ => return Err(self.unknown_opcode(op)),
        }
        Ok(())
    }

    /// The module and name lines of `GLOBAL` / `INST`.
    fn global_lines(&mut self, what: &str) -> Result<(String, String)> {
        let module = self.input.line(what)?;
        let module = self.text_str(module, what)?;
        let name = self.input.line(what)?;
        let name = self.text_str(name, what)?;
        Ok((module, name))
    }

    pub(super) fn persistent_load(&mut self, pid: &Val) -> Result<Val> {
        let items = self.tuple_items(pid, "persistent id")?;
        let tag = match items.first() {
            Some(Val::Str(s)) => s.to_string(),
            _ => return Err(self.err("persistent id without a string tag")),
        };
        if tag != "storage" || !(5..=6).contains(&items.len()) {
            return Err(self.unsupported(format!(
                "persistent id `{tag}` with {} fields (only torch storages are read)",
                items.len()
            )));
        }
        let dtype = match &items[1] {
            Val::Global(g) => match g.kind {
                GlobalKind::Storage(d) => d,
                _ => {
                    return Err(
                        self.err(format!("`{}.{}` is not a storage type", g.module, g.name))
                    );
                }
            },
            other => return Err(self.err(format!("storage type is a {}", other.kind()))),
        };
        let key = match &items[2] {
            Val::Str(s) => s.to_string(),
            Val::Int(i) => i.to_string(),
            other => return Err(self.err(format!("storage key is a {}", other.kind()))),
        };
        let location = match &items[3] {
            Val::Str(s) => s.to_string(),
            other => return Err(self.err(format!("storage location is a {}", other.kind()))),
        };
        let numel = self.int(&items[4], "storage size")?;
        let numel = u64::try_from(numel).map_err(|_| self.err("negative storage size"))?;
        // Legacy files add view metadata; torch >= 0.4 always writes None there.
        if items.get(5).is_some_and(|view| !matches!(view, Val::None)) {
            return Err(self.unsupported("legacy storage views (view_metadata)"));
        }
        let s = StorageRef {
            key,
            dtype,
            location,
            numel,
        };
        self.storages.push(s.clone());
        Ok(Val::Storage(Rc::new(s)))
    }

    /// `REDUCE`: applies an allowed callable to its arguments, as data.
    pub(super) fn call(&mut self, callable: Val, args: Vec<Val>) -> Result<Val> {
        let Val::Global(g) = callable else {
            return Err(self.err(format!("REDUCE calls a {}, not a global", callable.kind())));
        };
        let full = format!("{}.{}", g.module, g.name);
        let arity = |vm: &Self, ok: &[usize]| -> Result<()> {
            if ok.contains(&args.len()) {
                Ok(())
            } else {
                Err(vm.err(format!("{full} called with {} arguments", args.len())))
            }
        };
        match g.kind {
            GlobalKind::RebuildTensorV2 | GlobalKind::RebuildTensor => {
                if g.kind == GlobalKind::RebuildTensorV2 {
                    arity(self, &[6, 7])?;
                } else {
                    arity(self, &[4])?;
                }
                let storage = match &args[0] {
                    Val::Storage(s) => (**s).clone(),
                    other => return Err(self.err(format!("{full}: storage is a {}", other.kind()))),
                };
                let storage_offset = self.usize_of(&args[1], "storage offset")?;
                let shape = self.usizes(&args[2], "tensor size")?;
                let strides = self.usizes(&args[3], "tensor stride")?;
                if shape.len() != strides.len() {
                    return Err(self.err(format!(
                        "{full}: size has {} dimensions, stride {}",
                        shape.len(),
                        strides.len()
                    )));
                }
                let requires_grad = match args.get(4) {
                    Some(Val::Bool(b)) => *b,
                    _ => false,
                };
                Ok(Val::Tensor(Rc::new(TensorRef {
                    dtype: storage.dtype,
                    shape,
                    strides,
                    storage_offset,
                    storage,
                    requires_grad,
                    is_parameter: false,
                })))
            }
            GlobalKind::RebuildParameter | GlobalKind::RebuildParameterWithState => {
                arity(
                    self,
                    if g.kind == GlobalKind::RebuildParameter {
                        &[3]
                    } else {
                        &[4]
                    },
                )?;
                let Val::Tensor(t) = &args[0] else {
                    return Err(self.err(format!("{full}: data is a {}", args[0].kind())));
                };
                let mut t = (**t).clone();
                t.is_parameter = true;
                t.requires_grad = matches!(args[1], Val::Bool(true));
                // The optional Python attribute state is not kept: tensors carry no attributes here.
                Ok(Val::Tensor(Rc::new(t)))
            }
            GlobalKind::RebuildFromType => {
                arity(self, &[4])?;
                let inner = self.tuple_items(&args[2], "rebuild arguments")?;
                self.call(args[0].clone(), inner)
            }
            GlobalKind::OrderedDict => {
                let (v, d) = self.new_dict();
                match args.as_slice() {
                    [] => {}
                    [pairs] => {
                        for pair in self.tuple_items(pairs, "OrderedDict items")? {
                            let kv = self.tuple_items(&pair, "OrderedDict item")?;
                            let [k, value] = <[Val; 2]>::try_from(kv)
                                .map_err(|_| self.err("OrderedDict item is not a pair"))?;
                            d.borrow_mut().insert(k, value);
                        }
                    }
                    _ => return Err(self.err("OrderedDict called with several arguments")),
                }
                Ok(v)
            }
            GlobalKind::Set => {
                let items = match args.as_slice() {
                    [] => Vec::new(),
                    [Val::Set(s)] => s.borrow().clone(),
                    [items] => self.tuple_items(items, "set items")?,
                    _ => return Err(self.err("set called with several arguments")),
                };
                Ok(self.new_set(items))
            }
            GlobalKind::CodecsEncode | GlobalKind::ByteArray => match args.as_slice() {
                [] if g.kind == GlobalKind::ByteArray => Ok(Val::Bytes(Rc::from(&[][..]))),
                [Val::Bytes(b)] if g.kind == GlobalKind::ByteArray => Ok(Val::Bytes(b.clone())),
                [Val::Str(s), Val::Str(enc)] => Ok(Val::Bytes(self.encode(s, enc)?.into())),
                _ => Err(self.err(format!("{full} called with unexpected arguments"))),
            },
            GlobalKind::TorchSize => match args.as_slice() {
                [dims] => {
                    let items = self.tuple_items(dims, "torch.Size")?;
                    Ok(self.new_tuple(items))
                }
                _ => Err(self.err("torch.Size called with unexpected arguments")),
            },
            GlobalKind::Opaque => Ok(self.new_object(full, args)),
            GlobalKind::Storage(_) | GlobalKind::ValueOnly => Err(self.err(format!(
                "`{full}` is not a constructor that can be read as data"
            ))),
        }
    }

    /// `NEWOBJ` / `OBJ` / `INST`: `cls.__new__(cls, *args)`.
    pub(super) fn instantiate(&mut self, class: Val, args: Vec<Val>) -> Result<Val> {
        match &class {
            Val::Global(g) => match g.kind {
                GlobalKind::OrderedDict | GlobalKind::Set | GlobalKind::Opaque => {
                    if g.kind == GlobalKind::Opaque {
                        Ok(self.new_object(format!("{}.{}", g.module, g.name), args))
                    } else {
                        self.call(class, args)
                    }
                }
                _ => Err(self.err(format!(
                    "`{}.{}` cannot be instantiated as data",
                    g.module, g.name
                ))),
            },
            other => Err(self.err(format!("NEWOBJ on a {}", other.kind()))),
        }
    }

    /// `BUILD`: `obj.__setstate__(state)`, kept as the object's state.
    pub(super) fn build(&mut self, state: Val) -> Result<()> {
        match self.top()? {
            Val::Object(o) => {
                o.borrow_mut().state = Some(state);
                Ok(())
            }
            // Nothing to set (pickle writes BUILD only for non-None state, but be lenient).
            _ if matches!(state, Val::None) => Ok(()),
            // An `OrderedDict`'s instance attributes: every `state_dict()` carries torch's
            // `_metadata` (module versions) that way (A1111's hypernetwork files, for one).
            // Attributes are not items; the dict's items stay as they are.
            Val::Dict(_) if matches!(&state, Val::Dict(_)) => Ok(()),
            other => Err(self.err(format!("BUILD with state on a {}", other.kind()))),
        }
    }

    fn encode(&self, s: &str, encoding: &str) -> Result<Vec<u8>> {
        match encoding.to_ascii_lowercase().as_str() {
            "latin1" | "latin-1" | "iso-8859-1" => s
                .chars()
                .map(|c| u8::try_from(u32::from(c)).map_err(|_| self.err("non-latin1 character")))
                .collect(),
            "utf-8" | "utf8" => Ok(s.as_bytes().to_vec()),
            other => Err(self.unsupported(format!("bytes encoded as `{other}`"))),
        }
    }
}
