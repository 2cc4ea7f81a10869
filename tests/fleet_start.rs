//! Starting a fleet node: the cookie is required, a taken port is named,
//! and a reload cannot change `[fleet]`.
#![cfg(feature = "fleet")]

use seawall::config::Config;
use seawall::Seawall;

fn config(listen: &str) -> Config {
    let text = format!(
        "[fleet]\nnode = \"solo\"\nlisten = \"{listen}\"\nexpected_nodes = 1\n\n[services.kite_api]\nshared = \"kite:ACC\"\n"
    );
    Config::from_toml_with_env(&text, "test", |_| None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_fleet_node_when_started_then_errors_name_fixes_runtime_breakers_join_and_reload_cannot_change_it(
) {
    // The only test in this binary that touches the environment.
    std::env::remove_var("SEAWALL_FLEET_COOKIE");
    let err = Seawall::builder(config("127.0.0.1:0"))
        .start()
        .await
        .err()
        .expect("no cookie, no fleet");
    let text = err.to_string();
    assert!(text.contains("SEAWALL_FLEET_COOKIE"), "{text}");

    std::env::set_var("SEAWALL_FLEET_COOKIE", "a-cookie-for-this-test");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = Seawall::builder(config(&addr))
        .start()
        .await
        .err()
        .expect("the port is taken");
    let text = err.to_string();
    assert!(
        text.contains("fleet.listen") && text.contains(&addr),
        "{text}"
    );

    // A node alone: its view says so, and a reload may not touch [fleet].
    let seawall = Seawall::builder(config("127.0.0.1:0"))
        .start()
        .await
        .unwrap();
    let fleet = seawall::fleet::Fleet::of(&seawall).expect("joined");
    assert_eq!(fleet.view().node, "solo");
    // A breaker registered at run time is part of the node's beat too.
    let shared = seawall::config::ServiceConfig {
        shared: Some("db:PRIMARY".into()),
        ..Default::default()
    };
    seawall
        .register_circuit_breaker("orders_db", shared)
        .await
        .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let view = fleet.view();
        if view
            .dependencies
            .get("db:PRIMARY")
            .is_some_and(|b| b.iter().any(|b| b.service == "orders_db"))
        {
            seen = true;
            break;
        }
    }
    assert!(
        seen,
        "the run-time breaker is in the fleet view: {:?}",
        fleet.view().dependencies
    );
    let changed = "[fleet]\nnode = \"other\"\nlisten = \"127.0.0.1:0\"\n\n[services.kite_api]\nshared = \"kite:ACC\"\n";
    let err = seawall
        .reload_from_str(changed, |_| None)
        .await
        .expect_err("[fleet] is fixed at start");
    assert!(err.to_string().contains("fleet"), "{err}");
    seawall.shutdown().await;
}
