//! Reading and writing PyTorch files as data, against files written by the real `torch.save`
//! (fixtures/torch_file/, made by tools/torch_file_reference.py; expected values were read
//! back by the real `torch.load` and written as JSON / by `safetensors.torch.save_file`).

use std::path::{Path, PathBuf};

use sd_torch_file::{
    DType, Format, PickleValue, TensorRef, TorchFile, TorchFileError, TorchWriter, WriteOptions,
    unpickle,
};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/torch_file"
    ))
    .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).expect("read expected json");
    serde_json::from_str(&text).expect("parse expected json")
}

fn json_f32(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("values")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn json_usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("uint") as usize)
        .collect()
}

/// Checks one tensor against torch's description and values. Every value must be equal
/// exactly: f16/bf16/f32 and small ints convert to f32 without rounding, and these f64 values
/// round to the same f32 as torch's `.float()` (round to nearest).
fn assert_tensor(file: &TorchFile, name: &str, t: &TensorRef, want: &Value) {
    assert_eq!(t.dtype.torch_name(), want["dtype"], "{name} dtype");
    assert_eq!(t.shape, json_usizes(&want["shape"]), "{name} shape");
    assert_eq!(t.strides, json_usizes(&want["stride"]), "{name} stride");
    assert_eq!(
        t.storage_offset as u64, want["storage_offset"],
        "{name} offset"
    );
    let got = file.tensor_f32(t).expect("read tensor");
    assert_eq!(got, json_f32(&want["values"]), "{name} values");
}

#[test]
fn state_dict_matches_torch() {
    let file = TorchFile::open(&fixture("state_dict.ckpt")).expect("open");
    let want = expected("state_dict.expected.json");
    assert_eq!(file.format(), Format::Zip);
    let sd = file.state_dict().expect("state dict");
    let want_tensors = want["tensors"].as_object().expect("tensors");
    let names: Vec<&str> = sd.iter().map(|(n, _)| n.as_str()).collect();
    let want_names: Vec<&str> = want_tensors.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, want_names, "serde_json sorts keys; compare as sets");
    assert_eq!(names[0], "model.f32", "file order is kept");
    for (name, t) in &sd {
        assert_tensor(&file, name, t, &want_tensors[name.as_str()]);
    }
    // Views of one storage share it, as torch saved them.
    let by_name = |n: &str| &sd.iter().find(|(k, _)| k == n).expect("tensor").1;
    assert_eq!(
        by_name("model.transposed").storage.key,
        by_name("model.sliced").storage.key
    );
    assert_eq!(by_name("model.bf16").dtype, DType::BF16);

    let root = file.root();
    assert_eq!(
        root.get("global_step").and_then(PickleValue::as_int),
        want["global_step"].as_i64()
    );
    assert_eq!(
        root.get("epoch").and_then(PickleValue::as_int),
        want["epoch"].as_i64()
    );
    assert_eq!(
        root.get("lr"),
        Some(&PickleValue::Float(want["lr"].as_f64().expect("lr")))
    );
    assert_eq!(
        root.get("name").and_then(PickleValue::as_str),
        want["name"].as_str()
    );
    let raw: Vec<u8> = want["raw"]
        .as_array()
        .expect("raw")
        .iter()
        .map(|b| b.as_u64().expect("byte") as u8)
        .collect();
    assert_eq!(root.get("raw"), Some(&PickleValue::Bytes(raw)));
    assert_eq!(
        root.get("neg").and_then(PickleValue::as_int),
        want["neg"].as_i64()
    );
    let Some(PickleValue::BigInt(big)) = root.get("big") else {
        panic!("2**70 must be a BigInt, got {:?}", root.get("big"));
    };
    let mut le = [0u8; 16];
    le[..big.len()].copy_from_slice(big);
    assert_eq!(
        u128::from_le_bytes(le).to_string(),
        want["big"].as_str().expect("big")
    );
    assert_eq!(
        root.get("nested"),
        Some(&PickleValue::List(vec![
            PickleValue::Int(1),
            PickleValue::Tuple(vec![PickleValue::Float(2.5), PickleValue::None]),
            PickleValue::Dict(vec![(
                PickleValue::String("k".into()),
                PickleValue::Bool(true)
            )]),
        ]))
    );
}

#[test]
fn safetensors_conversion_equals_torch_output() {
    let file = TorchFile::open(&fixture("state_dict.ckpt")).expect("open");
    let ours = file
        .to_safetensors(&file.state_dict().expect("state dict"))
        .expect("convert");
    let theirs = std::fs::read(fixture("state_dict.expected.safetensors")).expect("read");
    let ours = safetensors::SafeTensors::deserialize(&ours).expect("our output parses");
    let theirs = safetensors::SafeTensors::deserialize(&theirs).expect("torch output parses");
    let mut names = ours.names();
    names.sort_unstable();
    let mut want_names = theirs.names();
    want_names.sort_unstable();
    assert_eq!(names, want_names);
    for name in names {
        let (a, b) = (
            ours.tensor(name).expect("ours"),
            theirs.tensor(name).expect("theirs"),
        );
        assert_eq!(a.dtype(), b.dtype(), "{name}: original dtype kept");
        assert_eq!(a.shape(), b.shape(), "{name}");
        assert_eq!(a.data(), b.data(), "{name}: identical bytes");
    }
}

#[test]
fn a1111_embedding_with_plain_dict() {
    let file = TorchFile::open(&fixture("embedding_dict.pt")).expect("open");
    let want = expected("embedding.expected.json");
    let root = file.root();
    let params = root
        .get("string_to_param")
        .and_then(PickleValue::tensor_entries)
        .expect("params");
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].0, "*");
    assert!(
        params[0].1.requires_grad,
        "A1111 saves the trained vector with requires_grad"
    );
    assert_tensor(&file, "vec", params[0].1, &want["vec"]);
    assert_eq!(
        root.get("name").and_then(PickleValue::as_str),
        Some("tiny-emb")
    );
    assert_eq!(root.get("step").and_then(PickleValue::as_int), Some(42));
    assert_eq!(
        root.get("sd_checkpoint").and_then(PickleValue::as_str),
        Some("4c86efd062")
    );
    assert_eq!(
        root.get("string_to_token")
            .and_then(|d| d.get("*"))
            .and_then(PickleValue::as_int),
        Some(265)
    );
}

#[test]
fn a1111_embedding_with_parameter_dict() {
    let file = TorchFile::open(&fixture("embedding_paramdict.pt")).expect("open");
    let want = expected("embedding.expected.json");
    let pd = file.root().get("string_to_param").expect("string_to_param");
    let PickleValue::Object { class, .. } = pd else {
        panic!("a ParameterDict is an opaque object, got {}", pd.kind());
    };
    assert_eq!(class, "torch.nn.modules.container.ParameterDict");
    let params = pd
        .tensor_entries()
        .expect("ParameterDict entries via _parameters");
    assert_eq!(params.len(), 1);
    assert!(params[0].1.is_parameter);
    assert_tensor(&file, "vec", params[0].1, &want["vec"]);
    assert_eq!(file.root().get("sd_checkpoint"), Some(&PickleValue::None));
}

#[test]
fn legacy_format_is_read() {
    let file = TorchFile::open(&fixture("embedding_legacy.pt")).expect("open");
    let want = expected("embedding.expected.json");
    assert_eq!(file.format(), Format::Legacy);
    let root = file.root();
    let params = root
        .get("string_to_param")
        .and_then(PickleValue::tensor_entries)
        .expect("params");
    assert_tensor(&file, "vec", params[0].1, &want["vec"]);
    let f16 = root
        .get("extra_f16")
        .and_then(PickleValue::as_tensor)
        .expect("extra_f16");
    assert_tensor(&file, "extra_f16", f16, &want["vec_f16_row1"]);
    assert_eq!(
        root.get("name").and_then(PickleValue::as_str),
        Some("tiny-emb-legacy")
    );
}

#[test]
fn malicious_pickle_is_refused_naming_the_global() {
    let err = TorchFile::open(&fixture("malicious.pt")).expect_err("must refuse");
    match &err {
        TorchFileError::ForbiddenGlobal { path, module, name } => {
            assert_eq!((module.as_str(), name.as_str()), ("posix", "system"));
            assert!(path.ends_with("malicious.pt"));
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("posix.system"), "{err}");
    assert!(err.to_string().contains("malicious.pt"), "{err}");
}

#[test]
fn hostile_globals_are_refused_in_every_spelling() {
    let label = Path::new("hostile.pkl");
    // GLOBAL, STACK_GLOBAL (protocol 4), INST (protocol 0).
    let cases: [(&[u8], &str, &str); 4] = [
        (
            b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.",
            "builtins",
            "eval",
        ),
        (
            b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93.",
            "builtins",
            "exec",
        ),
        (b"(S'ls'\nisubprocess\ncall\n.", "subprocess", "call"),
        (b"\x80\x02cos\nsystem\n.", "os", "system"),
    ];
    for (bytes, m, n) in cases {
        match unpickle(bytes, label) {
            Err(TorchFileError::ForbiddenGlobal { module, name, .. }) => {
                assert_eq!((module.as_str(), name.as_str()), (m, n));
            }
            other => panic!("{m}.{n}: expected ForbiddenGlobal, got {other:?}"),
        }
    }
}

#[test]
fn truncated_files_give_typed_errors() {
    let err = TorchFile::open(&fixture("truncated.ckpt")).expect_err("truncated");
    assert!(matches!(err, TorchFileError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("truncated.ckpt"), "{err}");

    for name in [
        "state_dict.ckpt",
        "embedding_legacy.pt",
        "embedding_paramdict.pt",
    ] {
        let full = std::fs::read(fixture(name)).expect("read");
        // Every cut of the small file, stepping by 7 bytes to keep the test fast.
        for cut in (0..full.len()).step_by(7) {
            match TorchFile::from_bytes(name, full[..cut].to_vec()) {
                Err(TorchFileError::Truncated { .. }) => {}
                other => panic!("{name} cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
    }
}

#[test]
fn other_formats_are_not_torch_files() {
    let st = std::fs::read(fixture("state_dict.expected.safetensors")).expect("read");
    let err = TorchFile::from_bytes("model.ckpt", st).expect_err("safetensors is not torch");
    assert!(matches!(err, TorchFileError::NotTorchFile { .. }), "{err}");
    // A plain pickle (not torch.save output) is read up to the magic-number check.
    let err = TorchFile::from_bytes("plain.pt", b"\x80\x02K\x01.".to_vec()).expect_err("plain");
    assert!(matches!(err, TorchFileError::NotTorchFile { .. }), "{err}");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let n = 1_000_000;
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', n));
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    let err = unpickle(&p, Path::new("deep.pkl")).expect_err("too deep");
    assert!(
        matches!(
            err,
            TorchFileError::LimitExceeded {
                what: "nesting levels",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn aliased_chains_and_cycles_drop_without_recursion() {
    // N memoized lists, then list i+1 gets list i appended in *reverse* order, so no
    // per-container depth bookkeeping could catch it; the result is nested N deep.
    let n: u32 = 200_000;
    let mut p = b"\x80\x02".to_vec();
    for i in 0..n {
        p.push(b']');
        p.push(b'r');
        p.extend_from_slice(&i.to_le_bytes());
        p.push(b'0');
    }
    for i in (0..n - 1).rev() {
        p.push(b'j');
        p.extend_from_slice(&(i + 1).to_le_bytes());
        p.push(b'j');
        p.extend_from_slice(&i.to_le_bytes());
        p.extend_from_slice(b"a0");
    }
    p.push(b'j');
    p.extend_from_slice(&(n - 1).to_le_bytes());
    p.push(b'.');
    let err = unpickle(&p, Path::new("chain.pkl")).expect_err("too deep");
    assert!(matches!(err, TorchFileError::LimitExceeded { .. }), "{err}");

    // A list that contains itself.
    let cyc = b"\x80\x02]q\x00h\x00a.";
    let err = unpickle(cyc, Path::new("cycle.pkl")).expect_err("cycle");
    assert!(matches!(err, TorchFileError::LimitExceeded { .. }), "{err}");
}

#[test]
fn aliases_cannot_expand_exponentially() {
    // L0 = []; L(i+1) = [L(i), L(i)]: 2^60 values if copied naively.
    let mut p = b"\x80\x02]q\x00".to_vec();
    for i in 0..60u8 {
        p.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
    }
    p.push(b'.');
    let err = unpickle(&p, Path::new("bomb.pkl")).expect_err("bomb");
    assert!(
        matches!(err, TorchFileError::LimitExceeded { what: "values", .. }),
        "{err}"
    );
}

#[test]
fn huge_declared_lengths_do_not_allocate() {
    let label = Path::new("huge.pkl");
    let cases: [&[u8]; 4] = [
        b"\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x10abc.", // BINUNICODE8 2^60
        b"\x80\x02X\xff\xff\xff\xffabc.",                    // BINUNICODE 4 GiB
        b"\x80\x02\x8b\xff\xff\xff\x7fabc.",                 // LONG4 2 GiB
        b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff.",    // BINBYTES8 2^64-1
    ];
    for bytes in cases {
        let err = unpickle(bytes, label).expect_err("too long");
        assert!(matches!(err, TorchFileError::Truncated { .. }), "{err}");
    }
    // Malformed streams are typed errors too.
    for bytes in [
        &b"\x80\x02\xff."[..],
        b"\x80\x02a.",
        b"\x80\x02h\x05.",
        b"\x80\x02(.",
    ] {
        let err = unpickle(bytes, label).expect_err("malformed");
        assert!(
            matches!(err, TorchFileError::Pickle { .. }),
            "{bytes:?}: {err}"
        );
    }
}

#[test]
fn views_past_their_storage_are_refused() {
    let file = TorchFile::open(&fixture("embedding_dict.pt")).expect("open");
    let params = file
        .root()
        .get("string_to_param")
        .and_then(PickleValue::tensor_entries)
        .expect("params");
    let mut t = params[0].1.clone();
    t.shape = vec![3, 8]; // the storage holds 2 x 8
    let err = file.tensor_f32(&t).expect_err("past the end");
    assert!(matches!(err, TorchFileError::Tensor { .. }), "{err}");
    t.shape = vec![usize::MAX, 2];
    assert!(file.tensor_f32(&t).is_err());
}

/// The embedding written by our writer: its values are what tools/torch_file_reference.py
/// `--verify-rust` checks after `torch.load(weights_only=True)`.
fn rust_written_value() -> Vec<u8> {
    let mut w = TorchWriter::new();
    let values: Vec<f32> = (0..8)
        .map(|i| i as f32 * 0.25 - 1.0)
        .chain((0..8).map(|i| i as f32 * 0.5))
        .collect();
    let mut vec = w.add_f32(&[2, 8], &values).expect("add");
    vec.requires_grad = true; // as A1111 saves its trained vector
    let s = |x: &str| PickleValue::String(x.into());
    let root = PickleValue::Dict(vec![
        (
            s("string_to_token"),
            PickleValue::Dict(vec![(s("*"), PickleValue::Int(265))]),
        ),
        (
            s("string_to_param"),
            PickleValue::Dict(vec![(s("*"), PickleValue::Tensor(vec))]),
        ),
        (s("name"), s("rust-emb")),
        (s("step"), PickleValue::Int(500)),
        (s("sd_checkpoint"), s("4c86efd062")),
        (s("sd_checkpoint_name"), PickleValue::None),
    ]);
    w.finish(&root, &WriteOptions::named("rust-emb"))
        .expect("write")
}

#[test]
fn writer_round_trips_and_matches_the_torch_verified_bytes() {
    let bytes = rust_written_value();
    let file = TorchFile::from_bytes("rust-emb.pt", bytes.clone()).expect("read back");
    let params = file
        .root()
        .get("string_to_param")
        .and_then(PickleValue::tensor_entries)
        .expect("params");
    let got = file.tensor_f32(params[0].1).expect("values");
    assert_eq!(got[..3], [-1.0, -0.75, -0.5]);
    assert_eq!(got[8..11], [0.0, 0.5, 1.0]);
    assert!(params[0].1.requires_grad);
    assert_eq!(
        file.root().get("step").and_then(PickleValue::as_int),
        Some(500)
    );
    // The committed file was loaded by torch.load(weights_only=True) (see the script's
    // --verify-rust); the writer is deterministic, so equal bytes mean torch accepts ours.
    let committed = std::fs::read(fixture("written_by_rust.pt")).expect("committed fixture");
    assert_eq!(
        bytes, committed,
        "writer output changed: re-run write_rust_fixture and --verify-rust"
    );
}

#[test]
fn writer_round_trips_every_value_kind() {
    let mut w = TorchWriter::new();
    let half: Vec<u8> = [1.5f32, -2.0, 0.0]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let mut t = w.add_tensor(DType::F16, &[3], half).expect("f16");
    t.is_parameter = true;
    t.requires_grad = true;
    let root = PickleValue::Dict(vec![
        (PickleValue::Int(-70000), PickleValue::Int(i64::MIN)),
        (
            PickleValue::String("big".into()),
            PickleValue::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 0x40]),
        ),
        (PickleValue::String("f".into()), PickleValue::Float(-0.1)),
        (
            PickleValue::String("b".into()),
            PickleValue::Bytes(vec![0, 200, 255]),
        ),
        (
            PickleValue::String("t".into()),
            PickleValue::Tuple(vec![PickleValue::Int(1); 5]),
        ),
        (
            PickleValue::String("s".into()),
            PickleValue::Set(vec![PickleValue::Int(3)]),
        ),
        (
            PickleValue::String("l".into()),
            PickleValue::List((0..2500).map(PickleValue::Int).collect()),
        ),
        (
            PickleValue::String("p".into()),
            PickleValue::Tensor(t.clone()),
        ),
    ]);
    let bytes = w.finish(&root, &WriteOptions::default()).expect("write");
    let file = TorchFile::from_bytes("kinds.pt", bytes).expect("read");
    assert_eq!(file.root(), &root);
    assert_eq!(file.tensor_f32(&t).expect("values"), [1.5, -2.0, 0.0]);

    let mut w = TorchWriter::new();
    let obj = PickleValue::Global {
        module: "os".into(),
        name: "system".into(),
    };
    assert!(matches!(
        w.finish(&obj, &WriteOptions::default()),
        Err(TorchFileError::Write { .. })
    ));
    w = TorchWriter::new();
    assert!(w.add_f32(&[2, 2], &[1.0]).is_err());
}

/// Regenerates fixtures/torch_file/written_by_rust.pt; then run
/// `tools/.venv/bin/python tools/torch_file_reference.py --verify-rust`.
#[test]
#[ignore = "writes a fixture"]
fn write_rust_fixture() {
    std::fs::write(fixture("written_by_rust.pt"), rust_written_value()).expect("write fixture");
}
