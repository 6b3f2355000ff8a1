//! The opcodes that move values: the stack and its marks, the memo (pickle's back
//! references), and the containers built from the stack (CPython `Lib/pickle.py`,
//! `load_mark` … `load_additems`).

use super::opcode::*;
use super::{Result, Val, Vm};

impl Vm<'_> {
    /// `MARK`, `POP`, `POP_MARK`, `DUP`, and the memo's `PUT`/`GET` in their three spellings.
    pub(super) fn stack_or_memo(&mut self, op: u8) -> Result<()> {
        match op {
            MARK => self.marks.push(self.stack.len()),
            POP => {
                self.pop()?;
            }
            POP_MARK => {
                self.pop_mark()?;
            }
            DUP => {
                let v = self.top()?.clone();
                self.push(v);
            }
            PUT => {
                let line = self.input.line("PUT")?;
                let idx = self.text_u32(line, "PUT")?;
                self.memo_put(idx)?;
            }
            BINPUT => {
                let idx = self.input.u8("BINPUT")?;
                self.memo_put(idx.into())?;
            }
            LONG_BINPUT => {
                let idx = u32::from_le_bytes(self.input.array("LONG_BINPUT")?);
                self.memo_put(idx)?;
            }
            MEMOIZE => {
                let idx = u32::try_from(self.memo.len()).map_err(|_| self.err("memo full"))?;
                self.memo_put(idx)?;
            }
            GET | BINGET | LONG_BINGET => {
                let idx = match op {
                    GET => {
                        let line = self.input.line("GET")?;
                        self.text_u32(line, "GET")?
                    }
                    BINGET => self.input.u8("BINGET")?.into(),
                    _ => u32::from_le_bytes(self.input.array("LONG_BINGET")?),
                };
                let v = self.memo_get(idx)?;
                self.push(v);
            }
            _ => return Err(self.unknown_opcode(op)),
        }
        Ok(())
    }

    /// Lists, tuples, dicts and sets: made empty, made from the items above the mark, or
    /// filled in place.
    pub(super) fn container(&mut self, op: u8) -> Result<()> {
        match op {
            EMPTY_LIST => {
                let v = self.new_list(Vec::new());
                self.push(v);
            }
            LIST => {
                let items = self.pop_mark()?;
                let v = self.new_list(items);
                self.push(v);
            }
            APPEND => {
                let item = self.pop()?;
                self.extend_list(vec![item])?;
            }
            APPENDS => {
                let items = self.pop_mark()?;
                self.extend_list(items)?;
            }
            EMPTY_TUPLE => {
                let v = self.new_tuple(Vec::new());
                self.push(v);
            }
            TUPLE => {
                let items = self.pop_mark()?;
                let v = self.new_tuple(items);
                self.push(v);
            }
            TUPLE1..=TUPLE3 => {
                let n = usize::from(op - TUPLE1) + 1;
                if self.stack.len() < n
                    || self.marks.last().is_some_and(|&m| m > self.stack.len() - n)
                {
                    return Err(self.err("stack underflow in TUPLEn"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                let v = self.new_tuple(items);
                self.push(v);
            }
            EMPTY_DICT => {
                let (v, _) = self.new_dict();
                self.push(v);
            }
            DICT => {
                let items = self.pop_mark()?;
                let (v, d) = self.new_dict();
                self.fill_dict(&d, items)?;
                self.push(v);
            }
            SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                match self.top()? {
                    Val::Dict(d) => d.borrow_mut().insert(key, value),
                    other => return Err(self.err(format!("SETITEM on a {}", other.kind()))),
                }
            }
            SETITEMS => {
                let items = self.pop_mark()?;
                match self.top()? {
                    Val::Dict(d) => {
                        let d = d.clone();
                        self.fill_dict(&d, items)?;
                    }
                    other => return Err(self.err(format!("SETITEMS on a {}", other.kind()))),
                }
            }
            EMPTY_SET => {
                let v = self.new_set(Vec::new());
                self.push(v);
            }
            ADDITEMS => {
                let items = self.pop_mark()?;
                match self.top()? {
                    Val::Set(s) => s.borrow_mut().extend(items),
                    other => return Err(self.err(format!("ADDITEMS on a {}", other.kind()))),
                }
            }
            FROZENSET => {
                let items = self.pop_mark()?;
                let v = self.new_set(items);
                self.push(v);
            }
            _ => return Err(self.unknown_opcode(op)),
        }
        Ok(())
    }
}
