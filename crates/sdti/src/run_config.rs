//! `--config FILE`: a command's flags as the keys of a TOML file (`learn_rate = "0.005"`,
//! `steps = 3000`, `shuffle_tags = true`), or the `settings.json` a training run wrote in its
//! folder. The file's values come first and the command line's after them, so a flag given
//! on the command line wins; every key must be one of the command's flags.
//!
//! ```toml
//! # run.toml: `sdti train --config run.toml` (or `--config run.toml --steps 5000`)
//! model = "v1-5-pruned-emaonly.safetensors"
//! name = "realbenny-t1"
//! init_text = "person"
//! data = "benny-512"
//! learn_rate = "0.005:100, 1e-3:1000, 1e-5"
//! steps = 3000
//! ```
//!
//! `sdti train` writes such a file, `settings.toml`, into each run's folder: its flags as
//! given, so `sdti train --config <run folder>/settings.toml` repeats the run.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, bail};
use clap::{ArgAction, Command};

/// Keys of a trainer's `settings.json` (the library's `TrainConfig` and the run's own)
/// that name a flag of another name.
const SETTINGS_JSON_RENAMES: [(&str, &str); 3] = [
    ("data_dir", "data"),
    ("resume_from", "embedding"),
    ("embedding_name", "name"),
];

/// Keys of `settings.json` that record the run rather than set it (the dataset's files, the
/// model's name and hash, the step it started from) or that have no flag: skipped.
const SETTINGS_JSON_RECORDS: [&str; 8] = [
    "images",
    "initial_step",
    "model",
    "model_hash",
    "limits",
    "save_image_embeddings",
    "clip_skip",
    "preview",
];

/// The arguments `command` parses for `--config path` followed by `cli` (the tokens the user
/// gave after the subcommand's name, `--config` among them): the file's keys as flags first,
/// then `cli`. Parse the result with the command's `args_override_self` set, so that a flag
/// in both places takes the command line's value.
///
/// # Errors
/// The file cannot be read or parsed, a key is not a flag of `command`, or a value is not
/// a string, number or boolean (a list for a flag that takes several).
pub fn merged_args(
    path: &Path,
    command: &Command,
    cli: &[OsString],
) -> anyhow::Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let entries = if is_json {
        settings_json_entries(&text).with_context(|| format!("{}", path.display()))?
    } else {
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: not TOML", path.display()))?;
        table
            .into_iter()
            .map(|(k, v)| Ok((k, toml_value(v)?)))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("{}", path.display()))?
    };
    let mut args = vec![OsString::from(command.get_name())];
    for (key, value) in entries {
        let flag = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
        else {
            bail!(
                "{}: `{key}` is not a setting of `{}` (its keys are its flags: {})",
                path.display(),
                command.get_name(),
                flag_names(command)
            );
        };
        if flag == "config" {
            bail!(
                "{}: a config file cannot name another (`config`)",
                path.display()
            );
        }
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, Value::Bool(true)) => args.push(format!("--{flag}").into()),
            (ArgAction::SetTrue, Value::Bool(false)) => {}
            (ArgAction::SetTrue, _) => {
                bail!("{}: `{key}` is a switch: true or false", path.display())
            }
            (_, Value::Bool(_)) => bail!(
                "{}: `{key}` takes a value, not true or false",
                path.display()
            ),
            (_, Value::Text(items)) => {
                for item in items {
                    args.push(format!("--{flag}").into());
                    args.push(item.into());
                }
            }
        }
    }
    args.extend(cli.iter().cloned());
    Ok(args)
}

/// A config value as the command line gives it.
#[derive(Debug, PartialEq)]
enum Value {
    Bool(bool),
    /// One value, or several for a list.
    Text(Vec<String>),
}

fn toml_value(value: toml::Value) -> anyhow::Result<Value> {
    Ok(match value {
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Array(items) => Value::Text(
            items
                .into_iter()
                .map(|item| match toml_value(item)? {
                    Value::Text(mut one) if one.len() == 1 => Ok(one.remove(0)),
                    _ => bail!("a list holds strings or numbers"),
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        toml::Value::String(s) => Value::Text(vec![s]),
        toml::Value::Integer(i) => Value::Text(vec![i.to_string()]),
        toml::Value::Float(f) => Value::Text(vec![f.to_string()]),
        other => bail!("{other}: a value is a string, number, boolean or list"),
    })
}

/// The flags a training run's `settings.json` records: its `config` object with the keys
/// renamed to flags ([`SETTINGS_JSON_RENAMES`]), the embedding's name, nulls and the
/// record-only keys ([`SETTINGS_JSON_RECORDS`]) left out, the preview's prompt as
/// `preview_prompt`.
fn settings_json_entries(text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let json: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let mut entries = Vec::new();
    let config = json
        .get("config")
        .and_then(serde_json::Value::as_object)
        .context("no `config` object: not a training run's settings.json")?;
    if let Some(prompt) = config
        .get("preview")
        .and_then(|p| p.get("prompt"))
        .and_then(serde_json::Value::as_str)
    {
        entries.push((
            "preview_prompt".to_owned(),
            Value::Text(vec![prompt.to_owned()]),
        ));
    }
    let name = json.get("embedding_name").cloned();
    // A resumed run names its file; a created one its name (the flags conflict).
    let resumed = config.get("resume_from").is_some_and(|v| !v.is_null());
    let others = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .chain((!resumed).then(|| ("embedding_name", name.unwrap_or_default())));
    for (key, value) in others {
        if value.is_null() || SETTINGS_JSON_RECORDS.contains(&key) {
            continue;
        }
        let key = SETTINGS_JSON_RENAMES
            .iter()
            .find(|(from, _)| *from == key)
            .map_or(key, |(_, to)| to);
        let value = match value {
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::String(s) => Value::Text(vec![s]),
            serde_json::Value::Number(n) => Value::Text(vec![n.to_string()]),
            other => bail!("`{key}`: {other} is not a flag's value"),
        };
        entries.push((key.to_owned(), value));
    }
    Ok(entries)
}

/// The command's flags, for an error message: `model, name, ...`.
fn flag_names(command: &Command) -> String {
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != "config" && *l != "help")
        .map(|l| l.replace('-', "_"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    #[command(name = "train", args_override_self = true)]
    struct Flags {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        data: Option<String>,
        #[arg(long, default_value_t = 100)]
        steps: usize,
        #[arg(long, default_value = "0.005")]
        learn_rate: String,
        #[arg(long)]
        shuffle_tags: bool,
    }

    fn parse(file: &str, ext: &str, cli: &[&str]) -> anyhow::Result<Flags> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(format!("run.{ext}"));
        std::fs::write(&path, file)?;
        let cli: Vec<OsString> = cli.iter().map(OsString::from).collect();
        let args = merged_args(&path, &Flags::command(), &cli)?;
        Ok(Flags::try_parse_from(args)?)
    }

    #[test]
    fn toml_keys_are_flags_and_the_command_line_wins() {
        let flags = parse(
            "name = \"disc\"\nsteps = 30\nlearn-rate = \"0.01:10, 0.001\"\nshuffle_tags = true\n",
            "toml",
            &["--steps", "40"],
        )
        .expect("parses");
        assert_eq!(flags.name.as_deref(), Some("disc"));
        assert_eq!(flags.steps, 40);
        assert_eq!(flags.learn_rate, "0.01:10, 0.001");
        assert!(flags.shuffle_tags);
    }

    #[test]
    fn an_unknown_key_or_a_wrong_type_names_the_file_and_the_key() {
        let e = parse("stpes = 3\n", "toml", &[]).expect_err("unknown key");
        let text = format!("{e:#}");
        assert!(
            text.contains("run.toml") && text.contains("stpes"),
            "{text}"
        );
        assert!(text.contains("learn_rate"), "lists the keys: {text}");
        let e = parse("shuffle_tags = \"yes\"\n", "toml", &[]).expect_err("switch");
        assert!(format!("{e:#}").contains("switch"), "{e:#}");
        let e = parse("steps = [1, {a = 2}]\n", "toml", &[]).expect_err("table");
        assert!(format!("{e:#}").contains("run.toml"), "{e:#}");
        let e = parse("steps = 3\nsteps = 4\n", "toml", &[]).expect_err("duplicate key");
        assert!(format!("{e:#}").contains("not TOML"), "{e:#}");
    }

    #[test]
    fn a_value_clap_refuses_is_refused() {
        let e = parse("steps = \"many\"\n", "toml", &[]).expect_err("not a number");
        assert!(format!("{e:#}").contains("many"), "{e:#}");
    }

    #[test]
    fn a_runs_settings_json_maps_onto_the_flags() {
        let json = r#"{"config": {"data_dir": "pictures", "steps": 30, "learn_rate": "0.005",
            "shuffle_tags": false, "resume_from": null, "limits": {"max_steps": 1000},
            "preview": null}, "embedding_name": "disc", "images": ["a.png"], "model": "m"}"#;
        let flags = parse(json, "json", &[]).expect("parses");
        assert_eq!(flags.data.as_deref(), Some("pictures"));
        assert_eq!(flags.name.as_deref(), Some("disc"));
        assert_eq!(flags.steps, 30);
        assert!(!flags.shuffle_tags);
        let e = parse("{}", "json", &[]).expect_err("no config");
        assert!(format!("{e:#}").contains("settings.json"), "{e:#}");
    }
}
