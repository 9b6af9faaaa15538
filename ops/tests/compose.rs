//! docker-compose.yml describes a whole one-host cell: 3 clustered NATS nodes, Postgres 15,
//! Redis 7, a gateway and a worker built from the Dockerfiles and configured through
//! docker/chat.toml and environment variables. (No Docker engine here: `docker compose
//! config` cannot run, so the file is checked as data.)

use ops_checks::repo;
use serde_norway::Value;

fn compose() -> Value {
    repo::yaml_file("docker-compose.yml")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "docker-compose.yml has no service {name}");
    service
}

#[test]
fn the_cell_has_three_nats_nodes_postgres_redis_a_gateway_and_a_worker() {
    let compose = compose();
    let services: Vec<&str> =
        compose["services"].as_mapping().expect("services").keys().filter_map(Value::as_str).collect();
    assert_eq!(services, ["nats-1", "nats-2", "nats-3", "postgres", "redis", "gateway", "messages"]);
    for node in ["nats-1", "nats-2", "nats-3"] {
        let nats = service(&compose, node);
        let image = nats["image"].as_str().expect("NATS image");
        let version = image.strip_prefix("nats:2.").expect("a nats:2.x image");
        let minor: u32 =
            version.split(['.', '-']).next().and_then(|m| m.parse().ok()).expect("a 2.x version");
        assert!(minor >= 12, "{node}: NATS {image} is older than 2.12");
        assert!(
            nats["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|v| v == "./docker/nats.conf:/etc/nats/nats.conf:ro"),
            "{node} mounts docker/nats.conf"
        );
        assert_eq!(nats["healthcheck"]["test"][0], "CMD", "{node} has a healthcheck");
    }
    assert!(service(&compose, "postgres")["image"].as_str().is_some_and(|i| i.starts_with("postgres:15")));
    assert!(service(&compose, "redis")["image"].as_str().is_some_and(|i| i.starts_with("redis:7")));
}

#[test]
fn gateway_and_worker_build_from_the_dockerfiles_and_read_the_mounted_config() {
    let compose = compose();
    for (name, dockerfile) in
        [("gateway", "docker/gateway.Dockerfile"), ("messages", "docker/messages.Dockerfile")]
    {
        let process = service(&compose, name);
        assert_eq!(process["build"]["dockerfile"], dockerfile, "{name} builds from {dockerfile}");
        assert!(repo::root().join(dockerfile).is_file(), "{dockerfile} is missing");
        assert_eq!(process["environment"]["CHAT_CONFIG"], "/etc/chat/chat.toml");
        assert!(
            process["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|v| v == "./docker/chat.toml:/etc/chat/chat.toml:ro"),
            "{name} mounts docker/chat.toml"
        );
        for dependency in ["nats-1", "nats-2", "nats-3", "postgres", "redis"] {
            assert_eq!(
                process["depends_on"][dependency]["condition"], "service_healthy",
                "{name} waits for {dependency}"
            );
        }
        for secret in ["CHAT__DATABASE__URL", "CHAT__REDIS__URL"] {
            assert!(process["environment"][secret].is_string(), "{name} gets {secret} from the environment");
        }
    }
    let gateway = service(&compose, "gateway");
    assert!(
        gateway["ports"].as_sequence().unwrap().iter().any(|p| p == "8080:8080"),
        "the gateway is published on 8080"
    );
    assert_eq!(gateway["environment"]["CHAT__GATEWAY__JWT_KEYS_DIR"].as_str(), Some("/etc/chat-jwt"));
    assert!(
        gateway["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v.starts_with("${") && v.ends_with(":/etc/chat-jwt:ro"))),
        "the access-token keys are a directory the host names"
    );
}

#[test]
fn the_compose_config_points_the_processes_at_the_compose_services() {
    let config: toml::Table = repo::read("docker/chat.toml").parse().expect("docker/chat.toml is TOML");
    let urls: Vec<&str> =
        config["nats"]["urls"].as_array().expect("nats.urls").iter().filter_map(|u| u.as_str()).collect();
    assert_eq!(urls, ["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"]);
    assert_eq!(config["gateway"]["listen"].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(config["gateway"]["admin_listen"].as_str(), Some("0.0.0.0:9090"));
    assert_eq!(config["worker"]["admin_listen"].as_str(), Some("0.0.0.0:9090"));
    assert_eq!(config["log"]["json"].as_bool(), Some(true));
}
