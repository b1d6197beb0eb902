//! Concurrent writers: optimistic concurrency on one resource, and many parallel creates that
//! each get their own revision.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{client, fixtures, send, Server, ADMIN_KEY};

#[tokio::test]
async fn two_editors_of_one_etag_one_wins_one_gets_412() {
    let server = Server::start().await;
    server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;
    let url = server.url("/api/v1/environments/development/flags/banner");

    for round in 0..5 {
        // Both read the same version...
        let read = server.get("development", "flags", "banner").await;
        let etag = read.etag();
        let before = server.revision("development").await;
        // ...and both write, at the same time, from separate clients (separate connections).
        let edits = ["alice", "bob"].map(|who| {
            let mut body = read.body.clone();
            body["description"] = json!(format!("edited by {who} in round {round}"));
            let req = client()
                .put(&url)
                .bearer_auth(ADMIN_KEY)
                .header("If-Match", &etag)
                .header("X-Tailor-Actor", who)
                .json(&body);
            send(req)
        });
        let results = join_all(edits).await;
        let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
        let winners: Vec<_> = results
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: statuses {statuses:?}");
        let loser = results.iter().find(|r| r.status != StatusCode::OK).unwrap();
        loser.assert_error(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "If-Match",
        );

        // The winner's version is stored, exactly one revision later.
        let stored = server.get("development", "flags", "banner").await;
        assert_eq!(stored.body, winners[0].body, "round {round}");
        assert_eq!(server.revision("development").await, before + 1);
    }
}

#[tokio::test]
async fn parallel_creates_all_land_with_distinct_revisions() {
    const N: u64 = 24;
    let server = Server::start().await;
    let initial = server.revision("development").await;

    let creates = (0..N).map(|i| {
        let req = client()
            .post(server.url("/api/v1/environments/development/flags"))
            .bearer_auth(ADMIN_KEY)
            .json(&fixtures::bool_flag(&format!("flag-{i}")));
        send(req)
    });
    let results = join_all(creates).await;
    let mut revisions = BTreeSet::new();
    for res in &results {
        res.assert_status(StatusCode::CREATED);
        assert!(
            revisions.insert(res.revision()),
            "revision {} twice",
            res.revision()
        );
    }
    // Exactly the revisions initial+1 ..= initial+N, one per create.
    let expected: BTreeSet<u64> = (initial + 1..=initial + N).collect();
    assert_eq!(revisions, expected);
    assert_eq!(server.revision("development").await, initial + N);

    let list = send(server.admin(Method::GET, "/api/v1/environments/development/flags")).await;
    let keys: BTreeSet<String> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, (0..N).map(|i| format!("flag-{i}")).collect());

    let audit = server.audit("development", "kind=flag&limit=1000").await;
    let audited: BTreeSet<u64> = audit
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(audited, expected, "one audit entry per revision");
}
