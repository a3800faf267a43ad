//! Feeds arbitrary bytes, split at an arbitrary point, to the request parser (small and
//! default limits) and to the reply parser. None may panic or over-allocate; the request
//! parser must give the same result split or whole, and every command it returns must
//! survive `encode_command` and a second parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringflow_resp::{encode_command, Command, Limits, ReplyParser, RequestParser, RespError};

fn requests(parts: &[&[u8]], limits: Limits) -> Result<Vec<Command>, RespError> {
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

fuzz_target!(|data: &[u8]| {
    let (split, bytes) = match data.split_first() {
        Some((s, rest)) => (*s as usize, rest),
        None => return,
    };
    let split = split.min(bytes.len());
    let parts = [&bytes[..split], &bytes[split..]];
    let small = Limits {
        max_bulk: 256,
        max_args: 16,
        max_inline: 128,
        max_depth: 8,
    };
    for limits in [small, Limits::default()] {
        let got = requests(&parts, limits);
        assert_eq!(got, requests(&[bytes], limits), "split changed the result");
        if let Ok(cmds) = &got {
            let mut wire = Vec::new();
            for c in cmds {
                let args: Vec<&[u8]> = c.args.iter().map(Vec::as_slice).collect();
                encode_command(&args, &mut wire);
            }
            assert_eq!(requests(&[&wire], Limits::default()).as_ref(), Ok(cmds));
        }

        let mut p = ReplyParser::new(limits);
        'outer: for part in parts {
            p.push(part);
            loop {
                match p.next_reply() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }
});
