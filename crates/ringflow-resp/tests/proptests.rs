//! Property tests: round trips through the encoders and parsers, split arbitrarily, and
//! arbitrary bytes never panic.

use proptest::collection::vec;
use proptest::prelude::*;
use ringflow_resp::{
    encode_command, format_double, Command, Limits, ProtoVersion, Reply, ReplyParser, RequestParser,
};

/// Cut points (sorted, within `len`) from arbitrary numbers.
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = raw.iter().map(|r| r % (len + 1)).collect();
    c.sort_unstable();
    c
}

fn pieces<'a>(bytes: &'a [u8], raw: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts(bytes.len(), raw) {
        out.push(&bytes[start..cut]);
        start = cut;
    }
    out.push(&bytes[start..]);
    out
}

fn parse_requests(
    parts: &[&[u8]],
    limits: Limits,
) -> Result<Vec<Command>, ringflow_resp::RespError> {
    let mut p = RequestParser::new(limits);
    let mut out = Vec::new();
    for part in parts {
        p.push(part);
        while let Some(c) = p.next_command()? {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_replies(
    parts: &[&[u8]],
    limits: Limits,
) -> Result<(Vec<Reply>, usize), ringflow_resp::RespError> {
    let mut p = ReplyParser::new(limits);
    let mut out = Vec::new();
    for part in parts {
        p.push(part);
        while let Some(r) = p.next_reply()? {
            out.push(r);
        }
    }
    Ok((out, p.buffered()))
}

fn line_text() -> impl Strategy<Value = String> {
    "[^\r\n]{0,12}"
}

fn reply_tree() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        line_text().prop_map(Reply::Simple),
        line_text().prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        vec(any::<u8>(), 0..24).prop_map(Reply::Bulk),
        Just(Reply::Null),
        Just(Reply::NullArray),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |d| !d.is_nan())
            .prop_map(Reply::Double),
        any::<bool>().prop_map(Reply::Boolean),
        ("txt|mkd", any::<String>()).prop_map(|(format, text)| Reply::Verbatim { format, text }),
        "-?[1-9][0-9]{0,40}".prop_map(Reply::BigNumber),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Reply::Array),
            vec((inner.clone(), inner.clone()), 0..4).prop_map(Reply::Map),
            vec(inner.clone(), 0..6).prop_map(Reply::Set),
            vec(inner, 0..6).prop_map(Reply::Push),
        ]
    })
}

/// What a RESP3 encoding reads back as: `NullArray` is written as `_`, i.e. `Null`.
fn as_resp3(r: &Reply) -> Reply {
    match r {
        Reply::NullArray => Reply::Null,
        Reply::Array(v) => Reply::Array(v.iter().map(as_resp3).collect()),
        Reply::Set(v) => Reply::Set(v.iter().map(as_resp3).collect()),
        Reply::Push(v) => Reply::Push(v.iter().map(as_resp3).collect()),
        Reply::Map(v) => Reply::Map(v.iter().map(|(k, v)| (as_resp3(k), as_resp3(v))).collect()),
        other => other.clone(),
    }
}

/// What a RESP2 encoding reads back as (Redis's downgrades).
fn as_resp2(r: &Reply) -> Reply {
    match r {
        Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => {
            Reply::Array(v.iter().map(as_resp2).collect())
        }
        Reply::Map(v) => Reply::Array(
            v.iter()
                .flat_map(|(k, v)| [as_resp2(k), as_resp2(v)])
                .collect(),
        ),
        Reply::Double(d) => Reply::Bulk(format_double(*d).into_bytes()),
        Reply::Boolean(b) => Reply::Integer(i64::from(*b)),
        Reply::Verbatim { text, .. } => Reply::Bulk(text.clone().into_bytes()),
        Reply::BigNumber(n) => Reply::Bulk(n.clone().into_bytes()),
        other => other.clone(),
    }
}

/// Bytes that look like RESP often enough to reach deep parser states.
fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"%".to_vec()),
        Just(b"~".to_vec()),
        Just(b">".to_vec()),
        Just(b"|".to_vec()),
        Just(b"=".to_vec()),
        Just(b"!".to_vec()),
        Just(b"+".to_vec()),
        Just(b":".to_vec()),
        Just(b",".to_vec()),
        Just(b"#t".to_vec()),
        Just(b"_".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\x".to_vec()),
        Just(b" ".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"txt:".to_vec()),
        (0u32..12).prop_map(|n| n.to_string().into_bytes()),
        vec(any::<u8>(), 0..4),
    ];
    vec(token, 0..48).prop_map(|t| t.concat())
}

fn small_limits() -> Limits {
    Limits {
        max_bulk: 64,
        max_args: 8,
        max_inline: 32,
        max_depth: 8,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encoded_commands_parse_back_split_anywhere(
        cmds in vec(vec(vec(any::<u8>(), 0..40), 1..6), 1..12),
        raw_cuts in vec(any::<usize>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for c in &cmds {
            let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            encode_command(&args, &mut wire);
        }
        let got = parse_requests(&pieces(&wire, &raw_cuts), Limits::default()).unwrap();
        let want: Vec<Command> = cmds.into_iter().map(Command::new).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn quoted_inline_commands_parse_back(
        cmds in vec(vec(vec(any::<u8>(), 0..12), 1..5), 1..6),
        raw_cuts in vec(any::<usize>(), 0..6),
    ) {
        // Every byte as \xHH inside double quotes, joined by blanks: any bytes survive.
        let mut wire = Vec::new();
        for c in &cmds {
            for (i, arg) in c.iter().enumerate() {
                if i > 0 {
                    wire.extend_from_slice(if i % 2 == 0 { b" " } else { b" \t " });
                }
                wire.push(b'"');
                for b in arg {
                    wire.extend_from_slice(format!("\\x{b:02X}").as_bytes());
                }
                wire.push(b'"');
            }
            wire.extend_from_slice(b"\r\n");
        }
        let got = parse_requests(&pieces(&wire, &raw_cuts), Limits::default()).unwrap();
        let want: Vec<Command> = cmds.into_iter().map(Command::new).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop_oneof![vec(any::<u8>(), 0..600), resp_ish()],
        raw_cuts in vec(any::<usize>(), 0..6),
    ) {
        let parts = pieces(&bytes, &raw_cuts);
        for limits in [small_limits(), Limits::default()] {
            // Same outcome however the bytes are split.
            let whole_req = parse_requests(&[&bytes], limits);
            prop_assert_eq!(parse_requests(&parts, limits), whole_req);
            let whole_rep = parse_replies(&[&bytes], limits);
            prop_assert_eq!(
                format!("{:?}", parse_replies(&parts, limits)),
                format!("{whole_rep:?}")
            );
        }
    }

    #[test]
    fn resp3_replies_round_trip(
        replies in vec(reply_tree(), 1..4),
        raw_cuts in vec(any::<usize>(), 0..8),
    ) {
        let mut wire = Vec::new();
        for r in &replies {
            r.encode(ProtoVersion::Resp3, &mut wire);
        }
        let (got, left) = parse_replies(&pieces(&wire, &raw_cuts), Limits::default()).unwrap();
        prop_assert_eq!(left, 0);
        prop_assert_eq!(got, replies.iter().map(as_resp3).collect::<Vec<_>>());
    }

    #[test]
    fn resp2_replies_round_trip(
        replies in vec(reply_tree(), 1..4),
        raw_cuts in vec(any::<usize>(), 0..8),
    ) {
        let mut wire = Vec::new();
        for r in &replies {
            r.encode(ProtoVersion::Resp2, &mut wire);
        }
        let (got, left) = parse_replies(&pieces(&wire, &raw_cuts), Limits::default()).unwrap();
        prop_assert_eq!(left, 0);
        prop_assert_eq!(got, replies.iter().map(as_resp2).collect::<Vec<_>>());
    }
}
