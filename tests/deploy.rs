//! The deployment files under `deploy/`, checked offline: every YAML document parses, the image
//! is multi-stage and non-root, ports and probe paths are ones switchyard serves, the Kubernetes
//! policy is a valid copy of `policies/open-first.yaml`, compose mounts exist, and the systemd
//! unit starts `serve` and reloads on SIGHUP. Nothing here needs Docker, a cluster or systemd.
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
        "kubernetes/pvc.yaml",
        "kubernetes/service.yaml",
        "kubernetes/pdb.yaml",
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

#[test]
fn kubernetes_runs_one_replica_with_probes_on_the_admin_paths() {
    for (file, doc) in kube_objects() {
        assert!(
            doc["metadata"]["namespace"].is_null(),
            "{}: manifests carry no namespace",
            file.display()
        );
        assert_ne!(
            doc["kind"].as_str(),
            Some("HorizontalPodAutoscaler"),
            "{}: one replica until the PostgreSQL store lands",
            file.display()
        );
    }

    let deployment = kube_object("Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(1), "one replica (SQLite)");
    assert_eq!(spec["strategy"]["type"].as_str(), Some("Recreate"));
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
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert!(
        !container["resources"]["requests"].is_null(),
        "no resources"
    );

    // The arguments agree with the ports and mounts.
    let args: Vec<&str> = as_seq(&container["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args.first(), Some(&"serve"));
    let mounts: BTreeMap<&str, &str> = as_seq(&container["volumeMounts"])
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(mounts.contains_key("/etc/switchyard") && mounts.contains_key("/data"));
    let arg_after = |flag: &str| {
        let i = args.iter().position(|a| *a == flag).unwrap();
        args[i + 1]
    };
    assert!(arg_after("--policy").starts_with("/etc/switchyard/"));
    assert_eq!(arg_after("--data-dir"), "/data");
    assert!(arg_after("--listen").ends_with(":8080"));
    assert!(arg_after("--admin-listen").ends_with(":9090"));

    // Volumes, ConfigMap, PVC and Secret refer to one another by the right names.
    let volumes: BTreeMap<&str, &Value> = as_seq(&pod["volumes"])
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    let policy_volume = volumes[mounts["/etc/switchyard"]];
    assert_eq!(
        policy_volume["configMap"]["name"].as_str(),
        Some(name_of(&kube_object("ConfigMap")))
    );
    let data_volume = volumes[mounts["/data"]];
    let pvc = kube_object("PersistentVolumeClaim");
    assert_eq!(
        data_volume["persistentVolumeClaim"]["claimName"].as_str(),
        Some(name_of(&pvc))
    );
    assert_eq!(
        as_seq(&pvc["spec"]["accessModes"]),
        [Value::from("ReadWriteOnce")]
    );
    let secret = kube_object("Secret");
    assert!(
        as_seq(&container["envFrom"])
            .iter()
            .any(|e| e["secretRef"]["name"].as_str() == Some(name_of(&secret))),
        "the container does not load the Secret"
    );
    let placeholders = secret["stringData"].as_mapping().unwrap();
    assert!(placeholders.contains_key("SWITCHYARD_ADMIN_TOKEN"));
    for (key, value) in placeholders {
        assert!(
            value.as_str().unwrap().contains("REPLACE_ME"),
            "secret.example.yaml: {key:?} must be a placeholder"
        );
    }

    // The Service exposes exactly the proxy and admin ports and selects the pod.
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
    let labels = &spec["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[key], value, "the Service selects no pod");
    }

    // A disruption budget that a single replica can satisfy without blocking every drain.
    let pdb = kube_object("PodDisruptionBudget");
    let allowed = match (
        pdb["spec"]["minAvailable"].as_u64(),
        pdb["spec"]["maxUnavailable"].as_u64(),
    ) {
        (Some(min), None) => min == 0,
        (None, Some(max)) => max >= 1,
        _ => false,
    };
    assert!(allowed, "pdb.yaml would block drains of the single replica");
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

#[test]
fn compose_has_the_stack_and_every_mounted_file_exists() {
    let compose = document(&deploy().join("compose.yaml"));
    let services = compose["services"].as_mapping().unwrap();
    for name in ["switchyard", "prometheus", "grafana", "otel-collector"] {
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

    let switchyard = &compose["services"]["switchyard"];
    assert!(
        switchyard["deploy"]["replicas"].as_u64().unwrap_or(1) == 1,
        "one switchyard replica (SQLite)"
    );
    let build = &switchyard["build"];
    let context = deploy().join(build["context"].as_str().unwrap());
    assert!(
        context
            .join(build["dockerfile"].as_str().unwrap())
            .is_file()
    );
    let mounts = bind_mounts(switchyard);
    assert!(
        mounts
            .iter()
            .any(|(s, t)| s.ends_with("policies/open-first.yaml")
                && t == "/etc/switchyard/policy.yaml"),
        "the policy is not mounted at /etc/switchyard/policy.yaml"
    );
    assert!(
        as_seq(&switchyard["volumes"])
            .iter()
            .filter_map(Value::as_str)
            .any(|v| v.split(':').nth(1) == Some("/data")),
        "no volume for /data"
    );
    let otlp = compose_env(switchyard, "OTEL_EXPORTER_OTLP_ENDPOINT").unwrap();
    assert!(otlp.contains("otel-collector"), "traces go to {otlp}");
    assert!(
        compose_env(switchyard, "SWITCHYARD_ADMIN_TOKEN").is_some(),
        "the admin listener binds 0.0.0.0 in the container: it needs the token"
    );

    // Prometheus scrapes the admin port with the bearer token, and its rule files are mounted.
    let prometheus_yml = document(&deploy().join("prometheus/prometheus.yml"));
    let scrape = as_seq(&prometheus_yml["scrape_configs"])
        .iter()
        .find(|s| {
            as_seq(&s["static_configs"]).iter().any(|c| {
                as_seq(&c["targets"])
                    .iter()
                    .any(|t| t.as_str() == Some("switchyard:9090"))
            })
        })
        .expect("no scrape of switchyard:9090");
    assert_eq!(scrape["metrics_path"].as_str(), Some("/metrics"));
    let auth = &scrape["authorization"];
    assert!(auth["type"].as_str().unwrap_or("Bearer") == "Bearer");
    assert!(!auth["credentials_file"].is_null() || !auth["credentials"].is_null());
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
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert!(
        settings.contains_key("DynamicUser") || settings.contains_key("User"),
        "the unit runs as root"
    );
}
