//! The set every pod mounts, the values the rotator writes, and the checks a read must pass.

use crate::support::world::{WEST, World};
use std::collections::HashMap;
use std::path::Path;

/// One JSON secret mounted whole (`pair`) and through three jmesPath entries (`user`, `pass`,
/// `gen`), which all carry the same generation in every set written; a plain secret and a
/// SecureString parameter (`param`, `g-<n>`) beside them.
pub const OBJECTS: &str = "\
- objectName: app/pair
  objectType: secretsmanager
  objectAlias: pair
  jmesPath:
    - {path: username, objectAlias: user}
    - {path: password, objectAlias: pass}
    - {path: generation, objectAlias: gen}
- objectName: app/plain
  objectType: secretsmanager
  objectAlias: plain
- objectName: /app/param
  objectType: ssmparameter
  objectAlias: param
";
pub const FILES: [&str; 6] = ["pair", "user", "pass", "gen", "plain", "param"];
const PAIR: &str = "app/pair";
const PLAIN: &str = "app/plain";
const PARAM: &str = "/app/param";

fn pair_value(generation: u64) -> String {
    serde_json::json!({
        "generation": generation.to_string(),
        "username": format!("u-{generation}"),
        "password": format!("p-{generation}"),
        "padding": "x".repeat(512),
    })
    .to_string()
}

fn plain_value() -> String {
    "plain-".repeat(40)
}

fn param_value(generation: u64) -> String {
    format!("g-{generation}")
}

pub async fn seed(w: &World) {
    w.secret(WEST, PAIR, &pair_value(0)).await;
    w.secret(WEST, PLAIN, &plain_value()).await;
    put_param(w, 0).await;
}

async fn put_param(w: &World, generation: u64) {
    w.moto
        .ssm(WEST)
        .put_parameter()
        .name(PARAM)
        .value(param_value(generation))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("put_parameter");
}

/// The secret at `generation`, then the parameter (in a call of its own).
pub async fn rotate(w: &World, generation: u64) {
    let sm = w.moto.sm(WEST);
    sm.put_secret_value().secret_id(PAIR).secret_string(pair_value(generation)).send().await.expect("rotate");
    put_param(w, generation).await;
}

/// The generation a set's files carry, or what is wrong with them. The parameter is rotated in
/// its own call, so it only has to be well formed.
pub fn check_set(files: &HashMap<&str, String>) -> Result<u64, String> {
    let generation: u64 = files["gen"].parse().map_err(|_| format!("gen is {:?}", files["gen"]))?;
    let pair = check_pair(&files["pair"])?;
    let agree = files["user"] == format!("u-{generation}") && files["pass"] == format!("p-{generation}");
    if !agree || pair != generation {
        return Err(format!("torn set: gen {generation}, user {}, pass {}, pair {pair}", files["user"], files["pass"]));
    }
    check_plain(&files["plain"])?;
    check_param(&files["param"])?;
    Ok(generation)
}

/// The generation of a `pair` file that is whole and agrees with itself.
fn check_pair(text: &str) -> Result<u64, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("pair is not JSON ({e})"))?;
    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let generation: u64 = field("generation").parse().map_err(|_| "pair has no generation".to_string())?;
    if field("username") != format!("u-{generation}") || field("password") != format!("p-{generation}") {
        return Err(format!("pair disagrees with itself: {text}"));
    }
    Ok(generation)
}

fn check_plain(text: &str) -> Result<(), String> {
    if text == plain_value() { Ok(()) } else { Err(format!("plain is {} bytes, not the value", text.len())) }
}

fn check_param(text: &str) -> Result<u64, String> {
    text.strip_prefix("g-").and_then(|n| n.parse().ok()).ok_or_else(|| format!("param is {text:?}"))
}

/// One file read alone through its visible link: whole and well formed.
pub fn check_file(name: &str, text: &str) -> Result<(), String> {
    let number = |prefix: &str| text.strip_prefix(prefix).is_some_and(|n| n.parse::<u64>().is_ok());
    let ok = match name {
        "pair" => return check_pair(text).map(drop),
        "plain" => return check_plain(text),
        "param" => return check_param(text).map(drop),
        "user" => number("u-"),
        "pass" => number("p-"),
        _ => number(""),
    };
    if ok { Ok(()) } else { Err(format!("{name} is {text:?}")) }
}

/// What each file of a set holds at `generation` (the parameter at the same generation).
pub fn files_at(generation: u64) -> [(&'static str, String); 6] {
    [
        ("pair", pair_value(generation)),
        ("user", format!("u-{generation}")),
        ("pass", format!("p-{generation}")),
        ("gen", generation.to_string()),
        ("plain", plain_value()),
        ("param", param_value(generation)),
    ]
}

/// The files of `target` read through their visible links (no swap in progress), checked as one set.
pub fn read_whole_set(target: &Path) -> Result<u64, String> {
    let files: HashMap<&str, String> = FILES
        .iter()
        .map(|name| std::fs::read_to_string(target.join(name)).map(|text| (*name, text)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", target.display()))?;
    check_set(&files).map_err(|e| format!("{}: {e}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(generation: u64) -> HashMap<&'static str, String> {
        files_at(generation).into_iter().collect()
    }

    #[test]
    fn a_whole_set_passes_and_a_torn_or_cut_one_does_not() {
        assert_eq!(check_set(&set(7)), Ok(7));
        for (name, text) in [("pass", "p-6".to_string()), ("pair", pair_value(6)), ("pair", pair_value(7)[..20].into())]
        {
            let mut torn = set(7);
            torn.insert(name, text);
            assert!(check_set(&torn).is_err(), "{name}: {torn:?}");
        }
    }

    #[test]
    fn a_file_read_alone_must_be_whole() {
        for (name, text) in files_at(3) {
            assert_eq!(check_file(name, &text), Ok(()), "{name}");
            assert!(check_file(name, &text[..text.len() - 1]).is_err(), "{name} cut short");
            assert!(check_file(name, "").is_err(), "{name} empty");
        }
    }
}
