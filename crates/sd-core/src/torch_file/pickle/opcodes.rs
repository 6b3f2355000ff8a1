//! The opcode loop: one `match` arm per pickle opcode (CPython `Lib/pickle.py`, `_Unpickler`
//! dispatch table; argument layouts from `Lib/pickletools.py`).

use super::{Result, Val, Vm};

impl Vm<'_> {
    pub(super) fn run(&mut self) -> Result<Val> {
        loop {
            self.op_pos = self.input.pos();
            let op = self.input.u8("an opcode")?;
            match op {
                // PROTO n: any protocol up to 5 is fine; the opcodes decide.
                0x80 => {
                    let p = self.input.u8("PROTO")?;
                    if p > 5 {
                        return Err(self.unsupported(format!("pickle protocol {p}")));
                    }
                }
                // FRAME n: framing is only a buffering hint.
                0x95 => {
                    self.input.array::<8>("FRAME")?;
                }
                b'.' => return self.pop(),
                // Plain values.
                b'N' => self.push(Val::None),
                0x88 => self.push(Val::Bool(true)),
                0x89 => self.push(Val::Bool(false)),
                b'K' => {
                    let v = self.input.u8("BININT1")?;
                    self.push(Val::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.input.array("BININT2")?);
                    self.push(Val::Int(v.into()));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.input.array("BININT")?);
                    self.push(Val::Int(v.into()));
                }
                0x8a => {
                    let n = self.input.u8("LONG1")?;
                    let b = self.input.bytes(n.into(), "LONG1")?;
                    let v = self.long(b);
                    self.push(v);
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.input.array("LONG4")?);
                    let n = u64::try_from(n).map_err(|_| self.err("negative LONG4 length"))?;
                    let b = self.input.bytes(n, "LONG4")?;
                    let v = self.long(b);
                    self.push(v);
                }
                b'I' => {
                    let line = self.input.line("INT")?;
                    let s = self.text_str(line, "INT")?;
                    let v = match s.as_str() {
                        "00" => Val::Bool(false),
                        "01" => Val::Bool(true),
                        s => Val::Int(s.parse().map_err(|_| self.err(format!("bad INT `{s}`")))?),
                    };
                    self.push(v);
                }
                b'L' => {
                    let line = self.input.line("LONG")?;
                    let s = self.text_str(line, "LONG")?;
                    let digits = s.trim_end_matches('L');
                    let v: i128 = digits
                        .parse()
                        .map_err(|_| self.err(format!("bad or oversized LONG `{s}`")))?;
                    let v = match i64::try_from(v) {
                        Ok(i) => Val::Int(i),
                        Err(_) => Val::BigInt(v.to_le_bytes().to_vec().into()),
                    };
                    self.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.input.array("BINFLOAT")?);
                    self.push(Val::Float(v));
                }
                b'F' => {
                    let line = self.input.line("FLOAT")?;
                    let s = self.text_str(line, "FLOAT")?;
                    let v = s
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("bad FLOAT `{s}`")))?;
                    self.push(Val::Float(v));
                }
                // Strings and bytes.
                b'X' => {
                    let n = u32::from_le_bytes(self.input.array("BINUNICODE")?);
                    let b = self.input.bytes(n.into(), "BINUNICODE")?;
                    let v = self.string(b)?;
                    self.push(v);
                }
                0x8c => {
                    let n = self.input.u8("SHORT_BINUNICODE")?;
                    let b = self.input.bytes(n.into(), "SHORT_BINUNICODE")?;
                    let v = self.string(b)?;
                    self.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.input.array("BINUNICODE8")?);
                    let b = self.input.bytes(n, "BINUNICODE8")?;
                    let v = self.string(b)?;
                    self.push(v);
                }
                b'V' => {
                    let line = self.input.line("UNICODE")?;
                    let s = raw_unicode_unescape(&line).ok_or_else(|| self.err("bad UNICODE"))?;
                    self.push(Val::Str(s.into()));
                }
                // Python 2 `str`: text when it is UTF-8, bytes otherwise.
                b'T' | b'U' | b'S' => {
                    let b = match op {
                        b'T' => {
                            let n = i32::from_le_bytes(self.input.array("BINSTRING")?);
                            let n = u64::try_from(n).map_err(|_| self.err("negative length"))?;
                            self.input.bytes(n, "BINSTRING")?
                        }
                        b'U' => {
                            let n = self.input.u8("SHORT_BINSTRING")?;
                            self.input.bytes(n.into(), "SHORT_BINSTRING")?
                        }
                        _ => {
                            let line = self.input.line("STRING")?;
                            python_string_literal(&line).ok_or_else(|| self.err("bad STRING"))?
                        }
                    };
                    let v = match String::from_utf8(b) {
                        Ok(s) => Val::Str(s.into()),
                        Err(e) => Val::Bytes(e.into_bytes().into()),
                    };
                    self.push(v);
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.input.array("BINBYTES")?);
                    let b = self.input.bytes(n.into(), "BINBYTES")?;
                    self.push(Val::Bytes(b.into()));
                }
                b'C' => {
                    let n = self.input.u8("SHORT_BINBYTES")?;
                    let b = self.input.bytes(n.into(), "SHORT_BINBYTES")?;
                    self.push(Val::Bytes(b.into()));
                }
                0x8e | 0x96 => {
                    let n = u64::from_le_bytes(self.input.array("BINBYTES8")?);
                    let b = self.input.bytes(n, "BINBYTES8")?;
                    self.push(Val::Bytes(b.into()));
                }
                0x97 | 0x98 => {
                    return Err(self.unsupported("out-of-band pickle buffers (protocol 5)"));
                }
                // Stack and memo.
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'p' => {
                    let line = self.input.line("PUT")?;
                    let idx = self.text_u32(line, "PUT")?;
                    self.memo_put(idx)?;
                }
                b'q' => {
                    let idx = self.input.u8("BINPUT")?;
                    self.memo_put(idx.into())?;
                }
                b'r' => {
                    let idx = u32::from_le_bytes(self.input.array("LONG_BINPUT")?);
                    self.memo_put(idx)?;
                }
                0x94 => {
                    let idx = u32::try_from(self.memo.len()).map_err(|_| self.err("memo full"))?;
                    self.memo_put(idx)?;
                }
                b'g' => {
                    let line = self.input.line("GET")?;
                    let idx = self.text_u32(line, "GET")?;
                    let v = self.memo_get(idx)?;
                    self.push(v);
                }
                b'h' => {
                    let idx = self.input.u8("BINGET")?;
                    let v = self.memo_get(idx.into())?;
                    self.push(v);
                }
                b'j' => {
                    let idx = u32::from_le_bytes(self.input.array("LONG_BINGET")?);
                    let v = self.memo_get(idx)?;
                    self.push(v);
                }
                // Containers.
                b']' => {
                    let v = self.new_list(Vec::new());
                    self.push(v);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.new_list(items);
                    self.push(v);
                }
                b'a' => {
                    let item = self.pop()?;
                    self.extend_list(vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                b')' => {
                    let v = self.new_tuple(Vec::new());
                    self.push(v);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.new_tuple(items);
                    self.push(v);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n
                        || self.marks.last().is_some_and(|&m| m > self.stack.len() - n)
                    {
                        return Err(self.err("stack underflow in TUPLEn"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.new_tuple(items);
                    self.push(v);
                }
                b'}' => {
                    let (v, _) = self.new_dict();
                    self.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let (v, d) = self.new_dict();
                    self.fill_dict(&d, items)?;
                    self.push(v);
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    match self.top()? {
                        Val::Dict(d) => d.borrow_mut().insert(key, value),
                        other => return Err(self.err(format!("SETITEM on a {}", other.kind()))),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Val::Dict(d) => {
                            let d = d.clone();
                            self.fill_dict(&d, items)?;
                        }
                        other => return Err(self.err(format!("SETITEMS on a {}", other.kind()))),
                    }
                }
                0x8f => {
                    let v = self.new_set(Vec::new());
                    self.push(v);
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Val::Set(s) => s.borrow_mut().extend(items),
                        other => return Err(self.err(format!("ADDITEMS on a {}", other.kind()))),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.new_set(items);
                    self.push(v);
                }
                // Globals and calls.
                b'c' => {
                    let module = self.input.line("GLOBAL")?;
                    let module = self.text_str(module, "GLOBAL")?;
                    let name = self.input.line("GLOBAL")?;
                    let name = self.text_str(name, "GLOBAL")?;
                    let v = self.global(module, name)?;
                    self.push(v);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Val::Str(module), Val::Str(name)) = (module, name) else {
                        return Err(self.err("STACK_GLOBAL needs two strings"));
                    };
                    let v = self.global(module.to_string(), name.to_string())?;
                    self.push(v);
                }
                b'i' => {
                    let module = self.input.line("INST")?;
                    let module = self.text_str(module, "INST")?;
                    let name = self.input.line("INST")?;
                    let name = self.text_str(name, "INST")?;
                    let class = self.global(module, name)?;
                    let args = self.pop_mark()?;
                    let v = self.instantiate(class, args)?;
                    self.push(v);
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(self.err("OBJ without a class"));
                    }
                    let args = items.split_off(1);
                    let class = items.remove(0);
                    let v = self.instantiate(class, args)?;
                    self.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = self.tuple_items(&args, "REDUCE arguments")?;
                    let v = self.call(callable, args)?;
                    self.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let args = self.tuple_items(&args, "NEWOBJ arguments")?;
                    let v = self.instantiate(class, args)?;
                    self.push(v);
                }
                0x92 => return Err(self.unsupported("NEWOBJ_EX (keyword constructor arguments)")),
                b'b' => {
                    let state = self.pop()?;
                    self.build(state)?;
                }
                b'P' => {
                    let line = self.input.line("PERSID")?;
                    let s = self.text_str(line, "PERSID")?;
                    return Err(self.unsupported(format!("text persistent id `{s}`")));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(&pid)?;
                    self.push(v);
                }
                0x82..=0x84 => return Err(self.unsupported("pickle extension registry (EXT1/2/4)")),
                _ => return Err(self.err(format!("unknown opcode 0x{op:02x}"))),
            }
        }
    }
}

/// Decodes pickle's protocol-0 `UNICODE` argument (raw-unicode-escape: `\uXXXX`,
/// `\UXXXXXXXX`, other bytes are Latin-1).
fn raw_unicode_unescape(line: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < line.len() {
        let digits = match (line[i], line.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => {
                out.push(char::from(line[i]));
                i += 1;
                continue;
            }
        };
        let hex = std::str::from_utf8(line.get(i + 2..i + 2 + digits)?).ok()?;
        out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
        i += 2 + digits;
    }
    Some(out)
}

/// Decodes pickle's protocol-0 `STRING` argument: a quoted Python 2 string literal with the
/// common backslash escapes.
fn python_string_literal(line: &[u8]) -> Option<Vec<u8>> {
    let q = *line.first()?;
    if !(q == b'\'' || q == b'"') || line.len() < 2 || *line.last()? != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            out.push(body[i]);
            i += 1;
            continue;
        }
        let e = *body.get(i + 1)?;
        i += 2;
        out.push(match e {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'0' => 0,
            b'\\' | b'\'' | b'"' => e,
            b'x' => {
                let hex = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                i += 2;
                u8::from_str_radix(hex, 16).ok()?
            }
            _ => return None,
        });
    }
    Some(out)
}
