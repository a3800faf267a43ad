//! QUIC with mutual TLS and framed streams, on loopback.

mod common;

use common::*;
use ringflow_net::{Endpoint, NetError, TlsIdentity, CLOSE_NORMAL};
use ringflow_proto::{encode_frame, ProtoError};

#[tokio::test]
async fn nodes_exchange_frames_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "t");
    let a = Endpoint::bind(localhost(), &identity(dir.path(), "n1"), &cfg()).expect("bind a");
    let b = Endpoint::bind(localhost(), &identity(dir.path(), "n2"), &cfg()).expect("bind b");
    let a_addr = a.local_addr().expect("addr");

    let accept = tokio::spawn({
        let a = a.clone();
        async move {
            let incoming = a.accept().await.expect("incoming");
            incoming.accept().await.expect("handshake")
        }
    });
    let b_to_a = timed(b.connect(a_addr)).await.expect("connect");
    let a_from_b = timed(accept).await.expect("join");
    assert!(b_to_a.peer_is_node());
    assert!(a_from_b.peer_is_node());
    assert_eq!(b_to_a.remote_addr(), a_addr);

    // b opens, a answers.
    let (mut send, mut recv) = b_to_a.open_bi().await.expect("open_bi");
    for seq in 0..3 {
        send.send(&Ping {
            seq,
            text: "ping".into(),
        })
        .await
        .expect("send");
    }
    let (mut a_send, mut a_recv) = timed(a_from_b.accept_bi())
        .await
        .expect("accept_bi")
        .expect("stream");
    for seq in 0..3 {
        let ping: Ping = timed(a_recv.recv()).await.expect("recv").expect("msg");
        assert_eq!(ping.seq, seq);
        a_send
            .send(&Pong {
                seq,
                text: ping.text.to_uppercase(),
                from_node: true,
            })
            .await
            .expect("reply");
    }
    for seq in 0..3 {
        let pong: Pong = timed(recv.recv()).await.expect("recv").expect("msg");
        assert_eq!((pong.seq, pong.text.as_str()), (seq, "PING"));
    }
    send.finish().expect("finish");
    assert_eq!(timed(a_recv.recv::<Ping>()).await.expect("eof"), None);
    a_send.finish().expect("finish");
    assert_eq!(timed(recv.recv::<Pong>()).await.expect("eof"), None);

    // a opens a stream back to b on the same connection.
    let (mut send, mut recv) = a_from_b.open_bi().await.expect("open_bi");
    send.send(&Ping {
        seq: 9,
        text: "back".into(),
    })
    .await
    .expect("send");
    let (mut b_send, mut b_recv) = timed(b_to_a.accept_bi())
        .await
        .expect("accept_bi")
        .expect("stream");
    let ping: Ping = timed(b_recv.recv()).await.expect("recv").expect("msg");
    b_send
        .send(&Pong {
            seq: ping.seq,
            text: "BACK".into(),
            from_node: true,
        })
        .await
        .expect("reply");
    let pong: Pong = timed(recv.recv()).await.expect("recv").expect("msg");
    assert_eq!(pong.seq, 9);

    // Unidirectional streams, a big message, and an unsendable one.
    let mut uni = b_to_a.open_uni().await.expect("open_uni");
    let big = "x".repeat(3 * 1024 * 1024);
    uni.send(&big).await.expect("send big");
    let too_big = "y".repeat(cfg().max_frame + 1);
    assert!(matches!(uni.send(&too_big).await, Err(NetError::Encode(_))));
    uni.send(&"after").await.expect("stream still usable");
    uni.finish().expect("finish");
    let mut uni_recv = timed(a_from_b.accept_uni())
        .await
        .expect("accept_uni")
        .expect("stream");
    assert_eq!(
        timed(uni_recv.recv::<String>())
            .await
            .expect("recv")
            .as_deref(),
        Some(big.as_str())
    );
    assert_eq!(
        timed(uni_recv.recv::<String>())
            .await
            .expect("recv")
            .as_deref(),
        Some("after")
    );
    assert_eq!(timed(uni_recv.recv::<String>()).await.expect("recv"), None);

    // Clean close: the peer's accept_bi returns None and closed() gives the reason.
    b_to_a.close(CLOSE_NORMAL, "bye");
    assert!(timed(a_from_b.accept_bi())
        .await
        .expect("clean close")
        .is_none());
    assert!(timed(a_from_b.closed()).await.contains("bye"));
    assert!(a_from_b.close_reason().is_some());

    timed(b.shutdown()).await;
    timed(a.shutdown()).await;
    assert!(timed(a.accept()).await.is_none());
}

#[tokio::test]
async fn peer_is_node_distinguishes_nodes_from_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "t");
    let (server, addr, _rx) = echo_server(&identity(dir.path(), "n1"));

    let node = Endpoint::client(&identity(dir.path(), "n2"), &cfg()).expect("node client");
    let conn = timed(node.connect(addr)).await.expect("connect");
    assert!(conn.peer_is_node());
    let pong = timed(round_trip(&conn, 1))
        .await
        .expect("rt")
        .expect("pong");
    assert!(pong.from_node, "server must see a node");

    let client = Endpoint::client(&identity(dir.path(), "c1"), &cfg()).expect("client");
    assert!(
        timed(client.accept()).await.is_none(),
        "client endpoints do not accept"
    );
    let conn = timed(client.connect(addr)).await.expect("connect");
    assert!(conn.peer_is_node(), "the server is a node");
    let pong = timed(round_trip(&conn, 2))
        .await
        .expect("rt")
        .expect("pong");
    assert_eq!(pong.text, "HELLO 2");
    assert!(!pong.from_node, "server must see a client");

    // A client certificate cannot serve.
    assert!(Endpoint::bind(localhost(), &identity(dir.path(), "c1"), &cfg()).is_err());
    timed(server.shutdown()).await;
}

#[tokio::test]
async fn client_from_another_ca_is_refused_and_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "good");
    let evil = tempfile::tempdir().expect("tempdir");
    cluster(evil.path(), "evil");
    let (server, addr, mut rx) = echo_server(&identity(dir.path(), "n1"));

    // The intruder trusts our CA (so it accepts our server) as well as its own, and
    // presents a certificate from its own CA; that node cert even claims
    // "ringflow-node". Only our server's client verification can stop it.
    let bundle = evil.path().join("both-cas.crt");
    let mut pem = std::fs::read(dir.path().join("ca.crt")).expect("read");
    pem.extend(std::fs::read(evil.path().join("ca.crt")).expect("read"));
    std::fs::write(&bundle, pem).expect("write bundle");
    for name in ["n1", "c1"] {
        let id = TlsIdentity::load(
            &bundle,
            &evil.path().join(format!("{name}.crt")),
            &evil.path().join(format!("{name}.key")),
        )
        .expect("foreign identity");
        let foreign = Endpoint::client(&id, &cfg()).expect("client");
        let attempt = async {
            let conn = foreign.connect(addr).await?;
            round_trip(&conn, 1).await
        };
        let res = timed(attempt).await;
        assert!(
            !matches!(res, Ok(Some(_))),
            "foreign {name} got through: {res:?}"
        );
        match next_problem(&mut rx).await {
            Event::HandshakeFailed(e) => assert!(matches!(e, NetError::Handshake { .. }), "{e:?}"),
            other => panic!("expected a handshake failure, got {other:?}"),
        }
    }

    let good = Endpoint::client(&identity(dir.path(), "c1"), &cfg()).expect("client");
    let conn = timed(good.connect(addr)).await.expect("connect");
    let pong = timed(round_trip(&conn, 7))
        .await
        .expect("rt")
        .expect("pong");
    assert_eq!(pong.seq, 7);
    timed(server.shutdown()).await;
}

#[tokio::test]
async fn server_from_another_ca_is_refused_by_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "good");
    let evil = tempfile::tempdir().expect("tempdir");
    cluster(evil.path(), "evil");
    let (server, addr, _rx) = echo_server(&identity(evil.path(), "n1"));

    let client = Endpoint::client(&identity(dir.path(), "n2"), &cfg()).expect("client");
    match timed(client.connect(addr)).await {
        Err(NetError::Handshake { addr: a, reason }) => {
            assert_eq!(a, addr);
            assert!(!reason.is_empty());
        }
        other => panic!("expected a handshake error, got {other:?}"),
    }
    timed(server.shutdown()).await;
}

#[tokio::test]
async fn garbage_is_a_protocol_violation_confined_to_its_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "t");
    let (server, addr, mut rx) = echo_server(&identity(dir.path(), "n1"));
    let client = Endpoint::client(&identity(dir.path(), "n2"), &cfg()).expect("client");
    let conn = timed(client.connect(addr)).await.expect("connect");

    // A long-lived stream opened before the garbage.
    let (mut keep_send, mut keep_recv) = conn.open_bi().await.expect("open");
    keep_send
        .send(&Ping {
            seq: 1,
            text: "a".into(),
        })
        .await
        .expect("send");
    assert_eq!(
        timed(keep_recv.recv::<Pong>())
            .await
            .expect("recv")
            .expect("pong")
            .seq,
        1
    );

    // A well-framed body that is not MessagePack.
    let (mut send, mut recv) = conn.open_bi().await.expect("open");
    let body = [0xc1u8, 0xc1, 0xff, 0x00, 0x13];
    let mut raw = (body.len() as u32).to_be_bytes().to_vec();
    raw.extend_from_slice(&body);
    send.send_raw(&raw).await.expect("send_raw");
    match next_problem(&mut rx).await {
        Event::StreamError(e) => {
            assert!(e.is_protocol_violation(), "{e:?}");
            assert!(
                matches!(e, NetError::Protocol(ProtoError::Malformed(_))),
                "{e:?}"
            );
        }
        other => panic!("expected a protocol violation, got {other:?}"),
    }
    // The offending stream is dead for the sender too (stopped, or finished without a reply).
    assert!(!matches!(timed(recv.recv::<Pong>()).await, Ok(Some(_))));

    // The same connection's other streams, old and new, still work.
    keep_send
        .send(&Ping {
            seq: 2,
            text: "b".into(),
        })
        .await
        .expect("send");
    assert_eq!(
        timed(keep_recv.recv::<Pong>())
            .await
            .expect("recv")
            .expect("pong")
            .seq,
        2
    );
    assert_eq!(
        timed(round_trip(&conn, 3))
            .await
            .expect("rt")
            .expect("pong")
            .seq,
        3
    );

    // And a new connection works.
    let conn2 = timed(client.connect(addr)).await.expect("connect again");
    assert_eq!(
        timed(round_trip(&conn2, 4))
            .await
            .expect("rt")
            .expect("pong")
            .seq,
        4
    );
    timed(client.shutdown()).await;
    timed(server.shutdown()).await;
}

#[tokio::test]
async fn oversized_frame_header_is_rejected_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "t");
    let (server, addr, mut rx) = echo_server(&identity(dir.path(), "n1"));
    let client = Endpoint::client(&identity(dir.path(), "n2"), &cfg()).expect("client");
    let conn = timed(client.connect(addr)).await.expect("connect");

    // Announce a 4 GiB frame and send nothing more, keeping the stream open: the
    // receiver must reject the prefix itself, not wait for (or allocate) the body.
    let (mut send, _recv) = conn.open_bi().await.expect("open");
    send.send_raw(&u32::MAX.to_be_bytes())
        .await
        .expect("send_raw");
    match next_problem(&mut rx).await {
        Event::StreamError(NetError::Protocol(ProtoError::Oversize { len, max })) => {
            assert_eq!(len, u32::MAX as usize);
            assert_eq!(max, cfg().max_frame);
        }
        other => panic!("expected an oversize violation, got {other:?}"),
    }
    assert_eq!(
        timed(round_trip(&conn, 5))
            .await
            .expect("rt")
            .expect("pong")
            .seq,
        5
    );
    timed(server.shutdown()).await;
}

#[tokio::test]
async fn truncated_frame_at_end_of_stream_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "t");
    let (server, addr, mut rx) = echo_server(&identity(dir.path(), "n1"));
    let client = Endpoint::client(&identity(dir.path(), "n2"), &cfg()).expect("client");
    let conn = timed(client.connect(addr)).await.expect("connect");

    let frame = encode_frame(
        &Ping {
            seq: 1,
            text: "cut short".into(),
        },
        1024,
    )
    .expect("encode");
    let (mut send, _recv) = conn.open_bi().await.expect("open");
    send.send_raw(&frame[..frame.len() - 3])
        .await
        .expect("send_raw");
    send.finish().expect("finish");
    match next_problem(&mut rx).await {
        Event::StreamError(e) => {
            assert!(e.is_protocol_violation(), "{e:?}");
            assert!(
                matches!(e, NetError::Protocol(ProtoError::Truncated { .. })),
                "{e:?}"
            );
        }
        other => panic!("expected a truncation violation, got {other:?}"),
    }
    timed(server.shutdown()).await;
}

#[tokio::test]
async fn connect_to_nothing_times_out_or_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "t");
    let cfg = ringflow_net::NetConfig {
        idle_timeout: std::time::Duration::from_millis(500),
        keep_alive: std::time::Duration::from_millis(100),
        ..cfg()
    };
    // A bound UDP socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let client = Endpoint::client(&identity(dir.path(), "c1"), &cfg).expect("client");
    let res = timed(client.connect(silent.local_addr().expect("addr"))).await;
    assert!(
        matches!(
            res,
            Err(NetError::Timeout { .. } | NetError::Handshake { .. })
        ),
        "{res:?}"
    );
}
