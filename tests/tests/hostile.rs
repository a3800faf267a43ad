//! Hostile input: garbage datagrams, garbage and oversized frames on authenticated streams.
//! The node closes the offending connection and keeps serving everyone else.

use std::net::UdpSocket;

use ringflow_net::{Endpoint, NetConfig, TlsIdentity};
use ringflow_proto::{encode_frame, ControlMsg, Hello, HelloReply, PeerRole, DEFAULT_MAX_FRAME};
use ringflow_tests::{pseudo_random, Client, ClusterOpts, MemberState, TestCluster};

#[test]
fn garbage_does_not_crash_any_node() {
    let mut c = TestCluster::start(ClusterOpts {
        workers: 2,
        replication: 2,
        ..ClusterOpts::default()
    });
    let before = c.wait_healthy(2);
    let mut targets = vec![c.coordinator_addr()];
    targets.extend(c.workers.values().map(|w| w.addr));

    // 1. Raw UDP garbage at every QUIC port, including things that look like QUIC headers.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    for (i, t) in targets.iter().enumerate() {
        for n in 0..200u64 {
            let mut d = pseudo_random(n * 31 + i as u64, 1 + (n as usize * 7) % 1400);
            if n % 3 == 0 {
                d[0] = 0xc0 | (d[0] & 0x0f); // long header bit set
                if d.len() > 5 {
                    d[1..5].copy_from_slice(&1u32.to_be_bytes()); // QUIC v1
                }
            }
            let _ = sock.send_to(&d, t);
        }
    }

    // 2. Authenticated (client cert) garbage on streams: before and after the handshake,
    //    oversized length prefixes, truncated frames.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
        let ep = Endpoint::client(&id, &NetConfig::default()).expect("endpoint");
        for t in &targets {
            let cases: Vec<Vec<u8>> = vec![
                pseudo_random(7, 300),
                u32::MAX.to_be_bytes().to_vec(),
                ((DEFAULT_MAX_FRAME as u32) + 1).to_be_bytes().to_vec(),
                {
                    let mut v = 100u32.to_be_bytes().to_vec();
                    v.extend([0xc1; 10]);
                    v
                },
            ];
            for (k, bytes) in cases.iter().enumerate() {
                let conn = ep.connect(*t).await.expect("authenticated connect");
                let (mut send, mut recv) = conn.open_bi().await.expect("stream");
                if k % 2 == 1 {
                    // A valid handshake first, then garbage.
                    send.send(&Hello::new(PeerRole::Client, None, "ringflow"))
                        .await
                        .expect("hello");
                    let r: Option<HelloReply> = recv.recv().await.expect("reply");
                    assert!(matches!(r, Some(HelloReply::Accepted { .. })), "{r:?}");
                }
                let _ = send.send_raw(bytes).await;
                let _ = send.finish();
                // The node answers nothing sensible: the stream or connection ends with an error.
                let r = recv.recv::<ControlMsg>().await;
                assert!(
                    !matches!(r, Ok(Some(ControlMsg::Status(_)))),
                    "garbage got a status: {r:?}"
                );
                conn.close(0, "done");
            }
            // A frame over the maximum, fully sent.
            let conn = ep.connect(*t).await.expect("connect");
            let (mut send, mut recv) = conn.open_bi().await.expect("stream");
            send.send(&Hello::new(PeerRole::Client, None, "ringflow"))
                .await
                .expect("hello");
            let _: Option<HelloReply> = recv.recv().await.expect("reply");
            let huge = vec![0u8; DEFAULT_MAX_FRAME + 16];
            let _ = send.send_raw(&((huge.len() as u32).to_be_bytes())).await;
            let _ = send.send_raw(&huge[..64 * 1024]).await;
            let _ = send.finish();
            let r = recv.recv::<ControlMsg>().await;
            assert!(
                !matches!(r, Ok(Some(_))),
                "oversized frame got an answer: {r:?}"
            );
            conn.close(0, "done");
            // Wrong cluster name in the hello is refused with a reason.
            let conn = ep.connect(*t).await.expect("connect");
            let (mut send, mut recv) = conn.open_bi().await.expect("stream");
            send.send(&Hello::new(PeerRole::Client, None, "another-cluster"))
                .await
                .expect("hello");
            let r: Option<HelloReply> = recv.recv().await.expect("reply");
            assert!(matches!(r, Some(HelloReply::Rejected { .. })), "{r:?}");
            conn.close(0, "done");
        }
        // An over-long message encodes to an error locally, never reaching the wire.
        assert!(encode_frame(&vec![0u8; 100], 10).is_err());
        ep.shutdown().await;
    });

    // Every process is alive and the cluster is exactly as healthy as before.
    assert!(
        c.coordinator.as_mut().expect("coordinator").is_running(),
        "coordinator died"
    );
    for w in c.workers.values_mut() {
        assert!(w.is_running(), "{} died", w.name);
    }
    let after = c.wait_healthy(2);
    assert_eq!(
        after.epoch, before.epoch,
        "garbage must not cause rebalancing"
    );
    assert!(after.members.iter().all(|m| m.state == MemberState::Alive));
    for w in c.workers.values() {
        let info = c.node_info(w.addr).expect("worker still serves");
        assert_eq!(info.epoch, after.epoch);
    }
}
