//! The Dockerfile's structure (no Docker engine runs here; scripts/image-build
//! carries out its build stage): a release build with the lock file, a
//! minimal non-root final image whose entrypoint is the binary, and a build
//! context that .dockerignore keeps small.

mod packaging;

use clap::{CommandFactory, Parser};
use kube_notify::cli::Cli;
use packaging::{read, root};

const BINARY: &str = "kube-notify";

#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    base: String,
    name: Option<String>,
    steps: Vec<Instruction>,
}

/// ARGs before the first FROM, and the stages.
fn parse() -> (Vec<Instruction>, Vec<Stage>) {
    let text = read(&root().join("Dockerfile"));
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    assert!(current.is_empty(), "the Dockerfile ends inside a continued line");
    let mut global = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let ins = Instruction { keyword: keyword.to_uppercase(), args: args.trim().to_string() };
        if ins.keyword == "FROM" {
            let words: Vec<&str> = ins.args.split_whitespace().collect();
            let name = (words.len() == 3 && words[1].eq_ignore_ascii_case("as")).then(|| words[2].to_string());
            stages.push(Stage { base: words[0].to_string(), name, steps: Vec::new() });
        } else if let Some(stage) = stages.last_mut() {
            stage.steps.push(ins);
        } else {
            global.push(ins);
        }
    }
    (global, stages)
}

fn steps<'a>(stage: &'a Stage, keyword: &str) -> Vec<&'a str> {
    stage.steps.iter().filter(|s| s.keyword == keyword).map(|s| s.args.as_str()).collect()
}

fn exec_form(args: &str, what: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{what} must be in exec form (a JSON array): {args}: {e}"))
}

/// Numeric major.minor, for comparing Rust versions.
fn version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or_else(|_| panic!("not a version: {v}")));
    (parts.next().unwrap(), parts.next().unwrap_or(0))
}

#[test]
fn build_stage_makes_a_locked_release_build() {
    let (global, stages) = parse();
    assert!(stages.len() >= 2, "a multi-stage build: a build stage and a minimal final stage");
    let build = &stages[0];
    assert!(build.base.contains("rust:"), "the build stage starts from the Rust image: {}", build.base);
    let rust_version = global
        .iter()
        .filter(|i| i.keyword == "ARG")
        .find_map(|i| i.args.strip_prefix("RUST_VERSION="))
        .expect("ARG RUST_VERSION=<version> before the first FROM");
    assert!(build.base.contains("${RUST_VERSION}"), "the build stage uses ARG RUST_VERSION");
    assert!(
        version(rust_version) >= version(env!("CARGO_PKG_RUST_VERSION")),
        "RUST_VERSION {rust_version} is older than the crate's rust-version {}",
        env!("CARGO_PKG_RUST_VERSION")
    );

    let mut release_builds = 0;
    for run in steps(build, "RUN") {
        for command in run.split("&&").flat_map(|c| c.split(';')).map(str::trim) {
            let words: Vec<&str> = command.split_whitespace().collect();
            if words.first() != Some(&"cargo") {
                continue;
            }
            assert!(words.contains(&"--locked"), "every cargo command uses the lock file (--locked): {command}");
            if words.get(1) == Some(&"build") {
                assert!(words.contains(&"--release"), "the image gets a release build: {command}");
                release_builds += 1;
            }
        }
    }
    assert!(release_builds > 0, "the build stage runs `cargo build --release --locked`");
    for stage in &stages {
        assert!(steps(stage, "ADD").is_empty(), "COPY, not ADD (no downloads or archives in the build)");
    }
}

#[test]
fn final_image_is_minimal_non_root_and_runs_the_binary() {
    let (_, stages) = parse();
    let build = &stages[0];
    let last = stages.last().unwrap();
    assert!(
        last.base == "gcr.io/distroless/cc-debian12:nonroot" || last.base == "scratch",
        "the final image is distroless (cc, nonroot) or scratch: {}",
        last.base
    );
    assert!(steps(last, "RUN").is_empty(), "the final image has no shell to RUN anything with");

    let user = steps(last, "USER").last().copied().expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(!matches!(uid, "root" | "0" | ""), "the image must not run as root: USER {user}");
    if let Ok(n) = uid.parse::<u32>() {
        assert!(n >= 1000, "a non-system user id: {n}");
    }

    let entrypoint = exec_form(steps(last, "ENTRYPOINT").last().expect("an ENTRYPOINT"), "ENTRYPOINT");
    assert_eq!(entrypoint.len(), 1, "the ENTRYPOINT is the binary alone: {entrypoint:?}");
    let binary_path = &entrypoint[0];
    assert!(binary_path.ends_with(&format!("/{BINARY}")), "the ENTRYPOINT is the {BINARY} binary: {binary_path}");
    let _ = env!("CARGO_BIN_EXE_kube-notify"); // the crate builds a binary of that name

    let build_name = build.name.as_deref().expect("the build stage is named (FROM … AS build)");
    let copied = steps(last, "COPY").into_iter().any(|c| {
        let words: Vec<&str> = c.split_whitespace().collect();
        words.first() == Some(&format!("--from={build_name}").as_str())
            && words.len() == 3
            && words[1].ends_with(&format!("/target/release/{BINARY}"))
            && words[2] == binary_path
    });
    assert!(copied, "the final stage copies target/release/{BINARY} from the build stage to {binary_path}");

    let cmd = exec_form(steps(last, "CMD").last().expect("a CMD with the default arguments"), "CMD");
    assert_eq!(cmd, ["run"], "the default arguments are `run`");
    assert!(Cli::command().find_subcommand("run").is_some(), "`run` is a subcommand");

    let exposed: Vec<u16> = steps(last, "EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    let kube_notify::cli::Command::Run(defaults) = Cli::try_parse_from(["kube-notify", "run"]).unwrap().command else {
        unreachable!()
    };
    assert!(exposed.contains(&defaults.http_addr.port()), "EXPOSE the ingestion port");
    assert!(exposed.contains(&defaults.admin_addr.port()), "EXPOSE the admin port");
}

/// .dockerignore's verdict on a path: the last matching pattern wins, `!`
/// re-includes, and a pattern that matches a parent folder covers its
/// contents (Docker's rules).
fn ignored(patterns: &[(bool, regex::Regex)], path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let mut result = false;
    for (negate, re) in patterns {
        if (1..=parts.len()).any(|n| re.is_match(&parts[..n].join("/"))) {
            result = !negate;
        }
    }
    result
}

fn dockerignore() -> Vec<(bool, regex::Regex)> {
    read(&root().join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (negate, pattern) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
            let mut re = String::from("^");
            let mut chars = pattern.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '*' if chars.peek() == Some(&'*') => {
                        chars.next();
                        re.push_str(".*");
                    }
                    '*' => re.push_str("[^/]*"),
                    '?' => re.push_str("[^/]"),
                    c => re.push_str(&regex::escape(&c.to_string())),
                }
            }
            re.push('$');
            (negate, regex::Regex::new(&re).unwrap())
        })
        .collect()
}

#[test]
fn build_context_holds_what_the_build_copies_and_nothing_big() {
    let patterns = dockerignore();
    for big in ["target/debug/kube-notify", ".git/HEAD", ".venv/bin/python", "target/chart-render/default.yaml"] {
        assert!(ignored(&patterns, big), ".dockerignore must keep {big} out of the build context");
    }
    let (_, stages) = parse();
    for stage in &stages {
        for copy in steps(stage, "COPY") {
            let words: Vec<&str> = copy.split_whitespace().collect();
            if words.iter().any(|w| w.starts_with("--from=")) {
                continue;
            }
            for source in &words[..words.len() - 1] {
                let path = root().join(source);
                assert!(path.exists(), "COPY {source}: no such file in the repository");
                let probe = if path.is_dir() {
                    let first = std::fs::read_dir(&path).unwrap().next().expect("an empty folder").unwrap();
                    format!("{source}/{}", first.file_name().to_string_lossy())
                } else {
                    source.to_string()
                };
                assert!(!ignored(&patterns, source), ".dockerignore leaves out {source}, which the build copies");
                assert!(!ignored(&patterns, &probe), ".dockerignore leaves out {probe}, which the build copies");
            }
        }
    }
}
