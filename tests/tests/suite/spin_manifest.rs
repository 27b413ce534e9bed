//! spin.toml checked against the Spin v2 manifest schema (the fields this project uses, unknown keys rejected),
//! and against the component it deploys: the artifact its build command produces, the models it mounts, and the
//! native server it may call.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    spin_manifest_version: u32,
    application: Application,
    trigger: Triggers,
    component: BTreeMap<String, Component>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Application {
    name: String,
    version: Option<String>,
    description: Option<String>,
    authors: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Triggers {
    http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpTrigger {
    route: String,
    component: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Component {
    source: String,
    description: Option<String>,
    files: Vec<FileMount>,
    environment: BTreeMap<String, String>,
    allowed_outbound_hosts: Vec<String>,
    build: Build,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileMount {
    Glob(String),
    Mapped { source: String, destination: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Build {
    command: String,
    watch: Option<Vec<String>>,
    workdir: Option<String>,
}

fn is_kebab_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The word after `name` in a command line.
fn flag<'a>(command: &'a str, name: &str) -> Option<&'a str> {
    let mut words = command.split_whitespace();
    words.find(|w| *w == name)?;
    words.next()
}

#[test]
fn spin_toml_is_a_valid_v2_manifest_for_the_built_component() {
    let manifest = check_manifest("spin.toml");
    let native = &manifest.component["classify-edge"].environment["NATIVE_URL"];
    assert_eq!(
        native, "http://127.0.0.1:8000",
        "the native server's default address"
    );
}

/// The cluster's copy differs only in NATIVE_URL: the Service of deploy/kubernetes/native-cpu.yaml.
#[test]
fn spin_cluster_toml_points_at_the_native_service() {
    let manifest = check_manifest("spin-cluster.toml");
    let native = &manifest.component["classify-edge"].environment["NATIVE_URL"];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let service = std::fs::read_to_string(root.join("deploy/kubernetes/native-cpu.yaml"))
        .expect("native-cpu.yaml");
    let (host, port) = native
        .trim_start_matches("http://")
        .split_once(':')
        .expect("host:port");
    assert!(
        service.contains(&format!("kind: Service\nmetadata:\n  name: {host}\n"))
            && service.contains(&format!("port: {port}")),
        "{native} is not the Service of native-cpu.yaml"
    );
    let local = check_manifest("spin.toml");
    assert_eq!(
        manifest.component["classify-edge"].files.len(),
        local.component["classify-edge"].files.len()
    );
}

/// Checks `file` (at the repo root) against the Spin v2 manifest schema and the component; returns it parsed.
fn check_manifest(file: &str) -> Manifest {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let manifest: Manifest = toml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(manifest.spin_manifest_version, 2);
    assert!(
        is_kebab_id(&manifest.application.name),
        "{}",
        manifest.application.name
    );
    assert!(manifest.application.version.is_some() && manifest.application.description.is_some());
    assert!(
        manifest
            .application
            .authors
            .as_ref()
            .is_none_or(|a| !a.is_empty())
    );

    assert!(!manifest.trigger.http.is_empty());
    for trigger in &manifest.trigger.http {
        assert!(trigger.route.starts_with('/'), "route {}", trigger.route);
        assert!(
            manifest.component.contains_key(&trigger.component),
            "trigger names {}",
            trigger.component
        );
    }
    let component = &manifest.component["classify-edge"];
    assert!(manifest.component.keys().all(|id| is_kebab_id(id)));
    assert!(
        component
            .description
            .as_deref()
            .is_none_or(|d| !d.is_empty())
    );

    // The build command builds the component and pre-initializes it with the mounted models into the source.
    let command = &component.build.command;
    for part in [
        "cargo build -p classify-edge --target wasm32-wasip2 --release",
        "-p classify-edge-host -- snapshot --component target/wasm32-wasip2/release/classify_edge.wasm",
    ] {
        assert!(
            command.contains(part),
            "build command `{command}` lacks `{part}`"
        );
    }
    assert_eq!(flag(command, "--output"), Some(component.source.as_str()));
    let mounted: Vec<&str> = component
        .files
        .iter()
        .filter_map(|mount| match mount {
            FileMount::Mapped { source, .. } => Some(source.as_str()),
            FileMount::Glob(_) => None,
        })
        .collect();
    assert_eq!(
        mounted,
        flag(command, "--models").into_iter().collect::<Vec<_>>()
    );
    assert!(component.build.workdir.is_none());
    assert!(
        component
            .build
            .watch
            .as_ref()
            .is_some_and(|w| !w.is_empty())
    );

    // The mounted models exist and land where the component reads them.
    let mut destinations = Vec::new();
    for mount in &component.files {
        match mount {
            FileMount::Mapped {
                source,
                destination,
            } => {
                assert!(
                    root.join(source).is_dir(),
                    "files source {source} does not exist"
                );
                destinations.push(destination.as_str());
            }
            FileMount::Glob(glob) => panic!("unexpected glob mount {glob}"),
        }
    }
    assert_eq!(destinations, ["/models"]);

    // NATIVE_URL is set and the component may call it.
    let native = component.environment.get("NATIVE_URL").expect("NATIVE_URL");
    assert!(
        component
            .allowed_outbound_hosts
            .iter()
            .any(|host| native.starts_with(host.as_str())),
        "{native}"
    );
    for host in &component.allowed_outbound_hosts {
        let (scheme, rest) = host
            .split_once("://")
            .unwrap_or_else(|| panic!("{host} has no scheme"));
        assert!(
            ["http", "https"].contains(&scheme) && !rest.is_empty(),
            "{host}"
        );
    }
    manifest
}
