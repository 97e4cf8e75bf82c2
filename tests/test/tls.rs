//! Connections over TLS (issue 8), against a throwaway server with a self-signed certificate
//! that refuses TCP connections without TLS: every command that works below proves the tool's
//! sessions are encrypted, and `sslmode` / `sslrootcert` behave as in libpq (also in not
//! applying to Unix-domain sockets).

use pg_hotswap::demo::cluster::{Cluster, ClusterOptions};

use crate::harness::{all_output, assert_exit, connect, describe, hotswap_async};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_over_tls_and_verifies_the_server_like_libpq() {
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start(&ClusterOptions {
            tls: true,
            ..ClusterOptions::default()
        })
    })
    .await
    .unwrap()
    .expect("starting a cluster with TLS");
    let admin = connect(&cluster.socket_conninfo("postgres")).await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;",
        )
        .await
        .unwrap();
    let tcp = cluster.conninfo("postgres");
    let root = cluster.tls_root_cert().display().to_string();
    let local = format!(
        "host=localhost port={} user=postgres dbname=postgres",
        cluster.port()
    );

    // Without TLS the server says no.
    let out = hotswap_async(&["status", "--dsn", &format!("{tcp} sslmode=disable")]).await;
    assert_exit(&out, 1);
    assert!(
        all_output(&out).contains("cannot connect"),
        "{}",
        describe(&out)
    );
    // require: encrypted (the server accepts nothing else), certificate not verified.
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &format!("{tcp} sslmode=require"),
        "--table",
        "t",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    let ty: String = admin
        .query_one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'id'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "bigint");
    // verify-full: the chain leads to the given root and the name matches.
    let out = hotswap_async(&[
        "status",
        "--dsn",
        &format!("{local} sslmode=verify-full sslrootcert={root}"),
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    // verify-full with a name the certificate does not carry: refused.
    let out = hotswap_async(&[
        "status",
        "--dsn",
        &format!("{tcp} sslmode=verify-full sslrootcert={root}"),
    ])
    .await;
    assert_exit(&out, 1);
    assert!(
        all_output(&out).contains("cannot connect"),
        "{}",
        describe(&out)
    );
    // verify-ca checks the chain only: the same connection works.
    let out = hotswap_async(&[
        "status",
        "--dsn",
        &format!("{tcp} sslmode=verify-ca sslrootcert={root}"),
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    // A root that did not sign the server's certificate: refused, also for the URI form.
    let uri = format!(
        "postgresql://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert=system",
        cluster.port()
    );
    let out = hotswap_async(&["status", "--dsn", &uri]).await;
    assert_ne!(
        out.status.code(),
        Some(0),
        "an unknown root was accepted:\n{}",
        describe(&out)
    );
    // Over the Unix socket TLS does not apply, as in libpq: the default sslmode (prefer) and
    // even require connect in the clear there.
    for mode in ["", " sslmode=require"] {
        let dsn = format!("{}{mode}", cluster.socket_conninfo("postgres"));
        let out = hotswap_async(&["status", "--dsn", &dsn]).await;
        assert_exit(&out, 0);
    }
    drop(cluster);
}
