//! `kube-notify get`: a state folder's objects, printed as `kubectl get`
//! prints them. Reads the database next to a running process (never writes).

use std::io::Write as _;

use anyhow::Context as _;
use serde_json::Value;

use crate::cli::{GetArgs, GetKind};
use crate::printer::{self, Output};
use crate::store::embedded::db::{Access, Db};
use crate::store::embedded::db_path;

/// The kind's name in the store and its CRD.
fn kind_of(kind: GetKind) -> (&'static str, &'static str) {
    match kind {
        GetKind::Integrations => ("NotificationIntegration", "notificationintegrations.kube-notify.io"),
        GetKind::Events => ("NotificationEvent", "notificationevents.kube-notify.io"),
        GetKind::Contacts => ("NotificationContact", "notificationcontacts.kube-notify.io"),
    }
}

/// What `get` prints on stdout (and the line for stderr when nothing matched).
pub fn render(args: &GetArgs, stored: Vec<String>, now: jiff::Timestamp) -> anyhow::Result<(String, Option<String>)> {
    let (kind, crd_name) = kind_of(args.kind);
    let crd = crate::crd::all()
        .into_iter()
        .map(|(_, crd)| crd)
        .find(|crd| crd.metadata.name.as_deref() == Some(crd_name))
        .context("the CRD is missing")?;
    let plural = crd_name.split('.').next().unwrap_or(crd_name);
    let mut objects = Vec::new();
    for body in stored {
        let v: Value = serde_json::from_str(&body).with_context(|| format!("a stored {kind} is unreadable"))?;
        let ns = v["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = v["metadata"]["name"].as_str().unwrap_or_default();
        if (args.all_namespaces || ns == args.namespace) && args.name.as_deref().is_none_or(|n| n == name) {
            objects.push(v);
        }
    }
    if let Some(name) = &args.name
        && objects.is_empty()
    {
        anyhow::bail!("Error from server (NotFound): {plural}.kube-notify.io {name:?} not found");
    }
    if objects.is_empty() && matches!(args.output, Output::Table | Output::Wide) {
        let line = if args.all_namespaces {
            "No resources found".to_string()
        } else {
            format!("No resources found in {} namespace.", args.namespace)
        };
        return Ok((String::new(), Some(line)));
    }
    // One object by name: the object itself, as `kubectl get KIND NAME -o yaml`.
    if args.name.is_some() && matches!(args.output, Output::Yaml | Output::Json) {
        return Ok((printer::render_one(&crd, &objects[0], args.output, now), None));
    }
    Ok((printer::render(&crd, &objects, args.output, args.all_namespaces, now), None))
}

/// Print what `args` ask for from the state folder.
pub fn print(args: &GetArgs) -> anyhow::Result<()> {
    let path = db_path(&args.state_dir);
    if !path.exists() {
        anyhow::bail!(
            "no state in {}: start `kube-notify standalone --state-dir {}` first, or give --state-dir",
            args.state_dir.display(),
            args.state_dir.display()
        );
    }
    let db = Db::open(&path, Access::ReadOnly).with_context(|| format!("cannot open {}", path.display()))?;
    let (kind, _) = kind_of(args.kind);
    let stored = db.objects(kind).with_context(|| format!("cannot read {}", path.display()))?;
    let (out, err) = render(args, stored, jiff::Timestamp::now())?;
    if let Some(err) = err {
        eprintln!("{err}");
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
