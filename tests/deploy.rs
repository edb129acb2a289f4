//! The deployment files under `deploy/`, checked offline: every YAML document parses, the image
//! is multi-stage and non-root, ports and probe paths are ones switchyard serves, the Kubernetes
//! policy is a valid copy of `policies/open-first.yaml`, compose mounts exist, compose and
//! Kubernetes run several replicas on the shared PostgreSQL store, and the systemd unit starts
//! `serve` (SQLite by default) and reloads on SIGHUP. Nothing here needs Docker, a cluster,
//! PostgreSQL or systemd.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// The proxy and admin ports (`--listen`, `--admin-listen` in every file here).
const PROXY_PORT: u64 = 8080;
const ADMIN_PORT: u64 = 9090;
/// The admin listener's probe paths: the only ones a probe may use (they need no token).
const PROBE_PATHS: [&str; 2] = ["/healthz", "/readyz"];
/// Written by another part of the project; mounted by compose.yaml, checked only when present.
const WRITTEN_ELSEWHERE: [&str; 2] = ["prometheus/alerts.yaml", "grafana/switchyard.json"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir` whose name ends in `.yaml` or `.yml`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The documents of a YAML stream, split on lines that are exactly `---`; documents holding only
/// comments or blank lines are skipped.
fn documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line == "---" {
            let meaningful = current.lines().any(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with('#')
            });
            if meaningful {
                let value: Value = serde_yaml::from_str(&current).unwrap_or_else(|e| {
                    panic!("{} (document {}): {e}", path.display(), docs.len() + 1)
                });
                docs.push(value);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

/// The one document of a single-document file.
fn document(path: &Path) -> Value {
    let mut docs = documents(path);
    assert_eq!(docs.len(), 1, "{}: expected one document", path.display());
    docs.remove(0)
}

/// Every Kubernetes object under deploy/kubernetes, by `kind`, with the file it came from.
fn kube_objects() -> Vec<(PathBuf, Value)> {
    yaml_files(&deploy().join("kubernetes"))
        .into_iter()
        .flat_map(|f| documents(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn kube_object(kind: &str) -> Value {
    let mut found: Vec<Value> = kube_objects()
        .into_iter()
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    found.remove(0)
}

fn as_seq(v: &Value) -> &[Value] {
    v.as_sequence().map_or(&[], Vec::as_slice)
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

#[test]
fn every_yaml_document_under_deploy_parses() {
    let files = yaml_files(&deploy());
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(deploy()).unwrap().display().to_string())
        .collect();
    for expected in [
        "compose.yaml",
        "otel-collector.yaml",
        "prometheus/prometheus.yml",
        "grafana/provisioning/datasources/prometheus.yaml",
        "grafana/provisioning/dashboards/switchyard.yaml",
        "kubernetes/configmap.yaml",
        "kubernetes/secret.example.yaml",
        "kubernetes/deployment.yaml",
        "kubernetes/service.yaml",
        "kubernetes/pdb.yaml",
        "kubernetes/hpa.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing deploy/{expected}"
        );
    }
    for file in &files {
        let docs = documents(file);
        assert!(!docs.is_empty(), "{}: no YAML document", file.display());
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_exposes_both_ports() {
    let text = read(&deploy().join("Dockerfile"));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let instruction = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| {
                let (word, rest) = l.split_once(char::is_whitespace)?;
                word.eq_ignore_ascii_case(name).then_some(rest.trim())
            })
            .collect()
    };

    let from = instruction("FROM");
    assert!(from.len() >= 2, "expected at least two stages: {from:?}");
    let named = regex::Regex::new(r"(?i)^\S+\s+AS\s+(\S+)$").unwrap();
    let stages: Vec<&str> = from
        .iter()
        .filter_map(|f| named.captures(f))
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert!(!stages.is_empty(), "no named build stage: {from:?}");
    assert!(
        instruction("COPY")
            .iter()
            .any(|c| stages.iter().any(|s| c.contains(&format!("--from={s}")))),
        "the last stage copies nothing from a build stage"
    );
    assert!(
        text.contains("cargo build --release --locked"),
        "the build is not `cargo build --release --locked`"
    );

    // Non-root: the final image is a nonroot one, or the last USER is not root.
    let runtime = from.last().unwrap();
    let last_user = instruction("USER").last().map(|u| u.to_string());
    let root_user = |u: &str| {
        let who = u.split(':').next().unwrap_or_default();
        who == "root" || who == "0"
    };
    match last_user {
        Some(u) => assert!(!root_user(&u), "runs as root: USER {u}"),
        None => assert!(
            runtime.contains("nonroot"),
            "no USER and not a nonroot image"
        ),
    }

    let exposed: Vec<u64> = instruction("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .map(|p| p.split('/').next().unwrap().parse().unwrap())
        .collect();
    for port in [PROXY_PORT, ADMIN_PORT] {
        assert!(exposed.contains(&port), "EXPOSE lacks {port}: {exposed:?}");
    }
    assert!(
        instruction("VOLUME").iter().any(|v| v.contains("/data")),
        "no VOLUME /data"
    );
    let cmd = instruction("CMD").join(" ");
    for arg in [
        "serve",
        "/etc/switchyard/policy.yaml",
        "0.0.0.0:8080",
        "0.0.0.0:9090",
        "/data",
    ] {
        assert!(cmd.contains(arg), "CMD lacks {arg}: {cmd}");
    }

    // Every COPY from the build context names something that exists in the repository, and
    // .dockerignore does not hide it.
    let ignore = read(&repo().join(".dockerignore"));
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for entry in ["target", ".git", "switchyard-data"] {
        assert!(ignored.contains(&entry), ".dockerignore lacks {entry}");
    }
    for copy in instruction("COPY") {
        let words: Vec<&str> = copy
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        if copy.contains("--from=") || words.len() < 2 {
            continue;
        }
        for source in &words[..words.len() - 1] {
            let source = source.trim_end_matches('/');
            if source == "." {
                continue;
            }
            assert!(
                repo().join(source).exists(),
                "COPY {source}: not in the repository"
            );
            let top = source.split('/').next().unwrap();
            assert!(!ignored.contains(&top), "COPY {source} is in .dockerignore");
        }
    }
}

/// A probe's or service's port: a number, or a container port name resolved through `ports`.
fn resolve_port(port: &Value, named: &BTreeMap<String, u64>) -> u64 {
    match port {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => *named
            .get(s)
            .unwrap_or_else(|| panic!("port name {s} is not a container port")),
        other => panic!("port {other:?} is neither a number nor a name"),
    }
}

/// The Kubernetes object of `kind` named `name`.
fn kube_named(kind: &str, name: &str) -> Value {
    kube_objects()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some(kind) && name_of(d) == name)
        .unwrap_or_else(|| panic!("no {kind} named {name} under deploy/kubernetes"))
}

/// A container's `env` entry named `name`.
fn container_env<'a>(container: &'a Value, name: &str) -> &'a Value {
    as_seq(&container["env"])
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("the container has no env {name}"))
}

#[test]
fn kubernetes_runs_replicas_on_the_shared_store_with_probes_on_the_admin_paths() {
    for (file, doc) in kube_objects() {
        assert!(
            doc["metadata"]["namespace"].is_null(),
            "{}: manifests carry no namespace",
            file.display()
        );
        assert_ne!(
            doc["kind"].as_str(),
            Some("PersistentVolumeClaim"),
            "{}: the ledger is in PostgreSQL; pods need no volume",
            file.display()
        );
    }

    let deployment = kube_object("Deployment");
    let spec = &deployment["spec"];
    let replicas = spec["replicas"].as_u64().unwrap();
    assert!(replicas >= 2, "replicas: {replicas}, expected at least 2");
    assert_eq!(spec["strategy"]["type"].as_str(), Some("RollingUpdate"));
    let pod = &spec["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > 30, "grace {grace}s must exceed the 30 s drain");
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));

    let containers = as_seq(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let mut named = BTreeMap::new();
    for port in as_seq(&container["ports"]) {
        let number = port["containerPort"].as_u64().unwrap();
        assert!(
            [PROXY_PORT, ADMIN_PORT].contains(&number),
            "containerPort {number} is neither the proxy nor the admin port"
        );
        if let Some(name) = port["name"].as_str() {
            named.insert(name.to_owned(), number);
        }
    }
    let mut probes = 0;
    for kind in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let probe = &container[kind];
        if probe.is_null() {
            continue;
        }
        probes += 1;
        let get = &probe["httpGet"];
        let path = get["path"].as_str().unwrap();
        assert!(
            PROBE_PATHS.contains(&path),
            "{kind} path {path} is not served"
        );
        assert_eq!(
            resolve_port(&get["port"], &named),
            ADMIN_PORT,
            "{kind} must probe the admin listener"
        );
    }
    assert!(probes >= 2, "readiness and liveness probes");
    // Readiness follows the store (/readyz fails while it is unreachable); liveness does not.
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert!(
        !container["resources"]["requests"]["cpu"].is_null(),
        "no CPU request (the HPA's utilization is measured against it)"
    );

    // The arguments agree with the ports and mounts; no SQLite data directory.
    let args: Vec<&str> = as_seq(&container["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args.first(), Some(&"serve"));
    assert!(
        !args.contains(&"--data-dir"),
        "--data-dir: the ledger is in PostgreSQL"
    );
    let mounts: BTreeMap<&str, &str> = as_seq(&container["volumeMounts"])
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(mounts.contains_key("/etc/switchyard"));
    let arg_after = |flag: &str| {
        let i = args.iter().position(|a| *a == flag).unwrap();
        args[i + 1]
    };
    assert!(arg_after("--policy").starts_with("/etc/switchyard/"));
    assert!(arg_after("--listen").ends_with(":8080"));
    assert!(arg_after("--admin-listen").ends_with(":9090"));

    // Volumes: every mount has one, the policy is the ConfigMap, none is a claim.
    let volumes: BTreeMap<&str, &Value> = as_seq(&pod["volumes"])
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    for (path, name) in &mounts {
        assert!(volumes.contains_key(name), "{path}: no volume {name}");
    }
    for (name, volume) in &volumes {
        assert!(
            volume["persistentVolumeClaim"].is_null(),
            "volume {name}: a claim; the ledger is in PostgreSQL"
        );
    }
    let policy_volume = volumes[mounts["/etc/switchyard"]];
    assert_eq!(
        policy_volume["configMap"]["name"].as_str(),
        Some(name_of(&kube_object("ConfigMap")))
    );

    // The store URL comes from a Secret key that secret.example.yaml defines; the replica id is
    // the pod's name.
    let store = &container_env(container, "SWITCHYARD_STORE_URL")["valueFrom"]["secretKeyRef"];
    let (store_secret, store_key) = (
        store["name"]
            .as_str()
            .expect("SWITCHYARD_STORE_URL is not from a secretKeyRef"),
        store["key"].as_str().unwrap(),
    );
    let url = kube_named("Secret", store_secret)["stringData"][store_key]
        .as_str()
        .unwrap_or_else(|| panic!("Secret {store_secret} has no key {store_key}"))
        .to_owned();
    assert!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "{store_secret}/{store_key} is not a PostgreSQL URL: {url}"
    );
    assert_eq!(
        container_env(container, "SWITCHYARD_REPLICA_ID")["valueFrom"]["fieldRef"]["fieldPath"]
            .as_str(),
        Some("metadata.name"),
        "SWITCHYARD_REPLICA_ID must be the pod name"
    );

    // The admin token and provider keys come from a Secret loaded whole; every example Secret
    // holds placeholders only.
    let secrets: Vec<Value> = kube_objects()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"].as_str() == Some("Secret"))
        .collect();
    let loaded: Vec<&str> = as_seq(&container["envFrom"])
        .iter()
        .filter_map(|e| e["secretRef"]["name"].as_str())
        .collect();
    assert!(!loaded.is_empty(), "the container loads no Secret");
    for name in &loaded {
        assert!(
            secrets.iter().any(|s| name_of(s) == *name),
            "envFrom names Secret {name}, which secret.example.yaml lacks"
        );
    }
    assert!(
        loaded.iter().any(|name| {
            kube_named("Secret", name)["stringData"]
                .as_mapping()
                .is_some_and(|m| m.contains_key("SWITCHYARD_ADMIN_TOKEN"))
        }),
        "no loaded Secret holds SWITCHYARD_ADMIN_TOKEN"
    );
    for secret in &secrets {
        for (key, value) in secret["stringData"].as_mapping().unwrap() {
            assert!(
                value.as_str().unwrap().contains("REPLACE_ME"),
                "secret.example.yaml: {}/{key:?} must be a placeholder",
                name_of(secret)
            );
        }
    }

    // The Service exposes exactly the proxy and admin ports and selects the pods.
    let labels = &spec["template"]["metadata"]["labels"];
    let selects_pods = |selector: &Value| {
        let pairs = selector.as_mapping().unwrap();
        !pairs.is_empty() && pairs.iter().all(|(k, v)| &labels[k] == v)
    };
    let service = kube_object("Service");
    for port in as_seq(&service["spec"]["ports"]) {
        let number = port["port"].as_u64().unwrap();
        assert!(
            [PROXY_PORT, ADMIN_PORT].contains(&number),
            "service port {number}"
        );
        if !port["targetPort"].is_null() {
            assert_eq!(resolve_port(&port["targetPort"], &named), number);
        }
    }
    assert!(
        selects_pods(&service["spec"]["selector"]),
        "the Service selects no pod"
    );

    // The autoscaler scales this Deployment, never below two replicas, on CPU.
    let hpa = kube_object("HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["apiVersion"].as_str(), Some("apps/v1"));
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    assert_eq!(target["name"].as_str(), Some(name_of(&deployment)));
    let min = hpa["spec"]["minReplicas"].as_u64().unwrap();
    let max = hpa["spec"]["maxReplicas"].as_u64().unwrap();
    assert!(min >= 2, "minReplicas {min}, expected at least 2");
    assert!(max > min, "maxReplicas {max} leaves nothing to scale");
    assert!(
        (min..=max).contains(&replicas),
        "replicas {replicas} outside the HPA's {min}..={max}"
    );
    assert!(
        as_seq(&hpa["spec"]["metrics"])
            .iter()
            .any(|m| m["resource"]["name"].as_str() == Some("cpu")),
        "the HPA has no CPU metric"
    );

    // The disruption budget covers these pods, keeps one up, and still lets a drain evict one.
    let pdb = kube_object("PodDisruptionBudget");
    assert!(
        selects_pods(&pdb["spec"]["selector"]["matchLabels"]),
        "pdb.yaml selects no switchyard pod"
    );
    let available = pdb["spec"]["minAvailable"].as_u64().unwrap();
    assert!(
        available >= 1 && available < min,
        "minAvailable {available}: keep one pod up, let drains evict one of {min}"
    );
}

#[test]
fn kubernetes_policy_is_a_valid_copy_of_open_first() {
    let configmap = kube_object("ConfigMap");
    let text = configmap["data"]["policy.yaml"].as_str().unwrap();
    let placeholder = |_: &str| Some("http://127.0.0.1:1/v1".to_owned());
    if let Err(diagnostics) =
        switchyard::Policy::from_yaml("kubernetes/configmap.yaml#policy.yaml", text, &placeholder)
    {
        let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        panic!("the ConfigMap's policy is invalid:\n{}", lines.join("\n"));
    }
    let original = read(&repo().join("policies/open-first.yaml"));
    assert_eq!(
        text.trim_end(),
        original.trim_end(),
        "configmap.yaml drifted from policies/open-first.yaml"
    );
}

/// A compose service's volume entries as (host source, container target), bind mounts only.
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    as_seq(&service["volumes"])
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => {
                let mut parts = s.split(':');
                let source = parts.next()?.to_owned();
                let target = parts.next()?.to_owned();
                (source.starts_with('.') || source.starts_with('/')).then_some((source, target))
            }
            other => (other["type"].as_str() == Some("bind")).then(|| {
                (
                    other["source"].as_str().unwrap().to_owned(),
                    other["target"].as_str().unwrap().to_owned(),
                )
            }),
        })
        .collect()
}

fn compose_env<'a>(service: &'a Value, name: &str) -> Option<&'a str> {
    let env = &service["environment"];
    if let Some(list) = env.as_sequence() {
        return list.iter().filter_map(Value::as_str).find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then_some(v)
        });
    }
    env[name].as_str()
}

/// A compose service's published host ports (`[IP:]HOST:CONTAINER` short syntax).
fn host_ports(service: &Value) -> Vec<u64> {
    as_seq(&service["ports"])
        .iter()
        .filter_map(Value::as_str)
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            assert!(parts.len() >= 2, "port {p} is not published on the host");
            parts[parts.len() - 2].parse().unwrap()
        })
        .collect()
}

#[test]
fn compose_runs_replicas_on_postgres_and_every_mounted_file_exists() {
    let mut compose = document(&deploy().join("compose.yaml"));
    compose.apply_merge().unwrap(); // `<<: *switchyard`, as Docker Compose reads it
    let services = compose["services"].as_mapping().unwrap();
    for name in ["postgres", "prometheus", "grafana", "otel-collector"] {
        assert!(
            services.contains_key(name),
            "compose.yaml lacks service {name}"
        );
    }
    for (name, service) in services {
        for (source, target) in bind_mounts(service) {
            let relative = source.trim_start_matches("./");
            if WRITTEN_ELSEWHERE.contains(&relative) && !deploy().join(relative).exists() {
                continue;
            }
            assert!(
                deploy().join(&source).exists(),
                "service {name:?} mounts {source} -> {target}, which does not exist"
            );
        }
    }
    let mut published = BTreeMap::new();
    for (name, service) in services {
        for port in host_ports(service) {
            if let Some(other) = published.insert(port, name.as_str().unwrap()) {
                panic!("host port {port} is published by {other} and {name:?}");
            }
        }
    }

    // The switchyard image is built by one service; the replicas are every service running it.
    let builders: Vec<&Value> = services
        .values()
        .filter(|s| !s["build"].is_null())
        .collect();
    assert_eq!(builders.len(), 1, "one service builds the switchyard image");
    let build = &builders[0]["build"];
    let context = deploy().join(build["context"].as_str().unwrap());
    assert!(
        context
            .join(build["dockerfile"].as_str().unwrap())
            .is_file()
    );
    let image = builders[0]["image"].as_str().unwrap();
    let replicas: Vec<(&str, &Value)> = services
        .iter()
        .filter(|(_, s)| s["image"].as_str() == Some(image))
        .map(|(n, s)| (n.as_str().unwrap(), s))
        .collect();
    assert!(
        replicas.len() >= 2,
        "expected at least two switchyard replicas, found {}",
        replicas.len()
    );

    // PostgreSQL: the official image, checked with pg_isready, data on a named volume, the
    // password required from the environment.
    let postgres = &compose["services"]["postgres"];
    assert!(
        postgres["image"].as_str().unwrap().starts_with("postgres:"),
        "not the official postgres image"
    );
    let check: Vec<&str> = as_seq(&postgres["healthcheck"]["test"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        check.iter().any(|w| w.contains("pg_isready")),
        "the postgres healthcheck is not pg_isready: {check:?}"
    );
    let named_volumes = compose["volumes"].as_mapping().unwrap();
    assert!(
        as_seq(&postgres["volumes"])
            .iter()
            .filter_map(Value::as_str)
            .any(|v| {
                let (source, target) = v.split_once(':').unwrap_or_default();
                named_volumes.contains_key(source) && target == "/var/lib/postgresql/data"
            }),
        "postgres keeps its data on no named volume"
    );
    assert!(
        compose_env(postgres, "POSTGRES_PASSWORD")
            .unwrap()
            .starts_with("${POSTGRES_PASSWORD:?"),
        "POSTGRES_PASSWORD must be required from the environment"
    );
    let pg_user = compose_env(postgres, "POSTGRES_USER").unwrap();
    let pg_db = compose_env(postgres, "POSTGRES_DB").unwrap();

    let mut ids = Vec::new();
    for (name, switchyard) in &replicas {
        let command: Vec<&str> = as_seq(&switchyard["command"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(command.first(), Some(&"serve"), "{name}");
        let arg_after = |flag: &str| {
            let i = command.iter().position(|a| *a == flag).unwrap();
            command[i + 1]
        };
        assert!(arg_after("--listen").ends_with(":8080"), "{name}");
        assert!(arg_after("--admin-listen").ends_with(":9090"), "{name}");
        assert!(
            !command.contains(&"--data-dir"),
            "{name}: --data-dir, but the ledger is in PostgreSQL"
        );
        assert!(
            bind_mounts(switchyard)
                .iter()
                .any(|(s, t)| s.ends_with("policies/open-first.yaml")
                    && t == "/etc/switchyard/policy.yaml"),
            "{name}: the policy is not mounted at /etc/switchyard/policy.yaml"
        );
        for volume in as_seq(&switchyard["volumes"])
            .iter()
            .filter_map(Value::as_str)
        {
            let source = volume.split(':').next().unwrap();
            assert!(
                !named_volumes.contains_key(source),
                "{name} mounts volume {source}: no shared ledger volume with PostgreSQL"
            );
        }

        // postgres://USER:${POSTGRES_PASSWORD…}@postgres:5432/DB
        let url = compose_env(switchyard, "SWITCHYARD_STORE_URL")
            .unwrap_or_else(|| panic!("{name} has no SWITCHYARD_STORE_URL"));
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .unwrap_or_else(|| panic!("{name}: SWITCHYARD_STORE_URL {url} is not PostgreSQL"));
        let (credentials, location) = rest.rsplit_once('@').unwrap();
        assert!(
            credentials.starts_with(&format!("{pg_user}:${{POSTGRES_PASSWORD")),
            "{name}: the store URL does not log in as {pg_user} with POSTGRES_PASSWORD"
        );
        let (host, database) = location.split_once('/').unwrap();
        assert_eq!(host, "postgres:5432", "{name}: store host");
        assert_eq!(database.split('?').next(), Some(pg_db), "{name}: database");
        assert_eq!(
            switchyard["depends_on"]["postgres"]["condition"].as_str(),
            Some("service_healthy"),
            "{name} must wait for a healthy postgres"
        );

        let id = compose_env(switchyard, "SWITCHYARD_REPLICA_ID")
            .unwrap_or_else(|| panic!("{name} has no SWITCHYARD_REPLICA_ID"));
        assert!(!ids.contains(&id), "{name}: replica id {id} is not unique");
        ids.push(id);
        let otlp = compose_env(switchyard, "OTEL_EXPORTER_OTLP_ENDPOINT").unwrap();
        assert!(
            otlp.contains("otel-collector"),
            "{name}: traces go to {otlp}"
        );
        assert!(
            compose_env(switchyard, "SWITCHYARD_ADMIN_TOKEN").is_some(),
            "{name}: the admin listener binds 0.0.0.0 in the container: it needs the token"
        );
    }

    // Clients reach every replica through one address: nginx's upstream lists each proxy port.
    let (lb_name, lb_config) = services
        .iter()
        .find_map(|(n, s)| {
            let (source, _) = bind_mounts(s)
                .into_iter()
                .find(|(_, t)| t.starts_with("/etc/nginx/"))?;
            Some((n.as_str().unwrap(), read(&deploy().join(source))))
        })
        .expect("no load balancer (nginx) in front of the replicas");
    assert!(
        host_ports(&compose["services"][lb_name]).contains(&PROXY_PORT),
        "{lb_name} does not publish the proxy port"
    );
    let upstreams: Vec<&str> = lb_config
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("server "))
        .filter_map(|l| l.split_whitespace().next())
        .map(|s| s.trim_end_matches(';'))
        .collect();
    for (name, _) in &replicas {
        assert!(
            upstreams.contains(&format!("{name}:{PROXY_PORT}").as_str()),
            "{lb_name} does not send traffic to {name}: {upstreams:?}"
        );
    }

    // Prometheus scrapes every replica's admin port with the bearer token, and its rule files
    // are mounted.
    let prometheus_yml = document(&deploy().join("prometheus/prometheus.yml"));
    for (name, _) in &replicas {
        let wanted = format!("{name}:{ADMIN_PORT}");
        let scrape = as_seq(&prometheus_yml["scrape_configs"])
            .iter()
            .find(|s| {
                as_seq(&s["static_configs"]).iter().any(|c| {
                    as_seq(&c["targets"])
                        .iter()
                        .any(|t| t.as_str() == Some(wanted.as_str()))
                })
            })
            .unwrap_or_else(|| panic!("no scrape of {wanted}"));
        assert_eq!(scrape["metrics_path"].as_str(), Some("/metrics"));
        let auth = &scrape["authorization"];
        assert!(auth["type"].as_str().unwrap_or("Bearer") == "Bearer");
        assert!(!auth["credentials_file"].is_null() || !auth["credentials"].is_null());
    }
    let prometheus_targets: Vec<String> = bind_mounts(&compose["services"]["prometheus"])
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let rule_files: Vec<&str> = as_seq(&prometheus_yml["rule_files"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!rule_files.is_empty(), "prometheus.yml loads no rules");
    for rules in rule_files {
        assert!(
            prometheus_targets.iter().any(|t| t == rules),
            "rule file {rules} is not mounted into the prometheus service"
        );
    }

    // Grafana's dashboard provider reads the directory the dashboard is mounted into.
    let provider = document(&deploy().join("grafana/provisioning/dashboards/switchyard.yaml"));
    let dashboards = as_seq(&provider["providers"])[0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        bind_mounts(&compose["services"]["grafana"])
            .iter()
            .any(|(s, t)| s.ends_with("switchyard.json") && t.starts_with(dashboards)),
        "grafana/switchyard.json is not mounted under {dashboards}"
    );

    // The collector receives OTLP and prints it.
    let collector = document(&deploy().join("otel-collector.yaml"));
    assert!(!collector["receivers"]["otlp"].is_null());
    assert!(!collector["exporters"]["debug"].is_null());
    let traces = &collector["service"]["pipelines"]["traces"];
    assert!(as_seq(&traces["receivers"]).contains(&Value::from("otlp")));
    assert!(as_seq(&traces["exporters"]).contains(&Value::from("debug")));
}

#[test]
fn systemd_unit_serves_reloads_on_hup_and_drains() {
    let text = read(&deploy().join("systemd/switchyard.service"));
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            settings
                .entry(key.trim().to_owned())
                .or_default()
                .push(value.trim().to_owned());
        }
    }
    let one = |key: &str| -> &str {
        let values = settings
            .get(key)
            .unwrap_or_else(|| panic!("the unit has no {key}="));
        values.last().unwrap()
    };
    let start = one("ExecStart");
    assert!(start.split_whitespace().any(|w| w == "serve"), "{start}");
    assert!(start.contains("--data-dir /var/lib/switchyard"), "{start}");
    assert!(one("ExecReload").contains("HUP"));
    assert_eq!(one("KillSignal"), "SIGTERM");
    let stop: u64 = one("TimeoutStopSec").trim_end_matches('s').parse().unwrap();
    assert!(
        stop > 30,
        "TimeoutStopSec {stop} must exceed the 30 s drain"
    );
    assert_eq!(one("StateDirectory"), "switchyard");
    assert_eq!(one("EnvironmentFile"), "/etc/switchyard/env");
    // SQLite by default; the PostgreSQL store is shown, commented out.
    assert!(
        settings
            .values()
            .flatten()
            .all(|v| !v.contains("SWITCHYARD_STORE_URL")),
        "the unit sets SWITCHYARD_STORE_URL: it must stay single-host SQLite by default"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('#') && l.contains("SWITCHYARD_STORE_URL=postgres://")),
        "the unit does not show how to use the PostgreSQL store"
    );
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert!(
        settings.contains_key("DynamicUser") || settings.contains_key("User"),
        "the unit runs as root"
    );
}
