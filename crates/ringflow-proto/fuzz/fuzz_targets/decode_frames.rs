//! Feeds arbitrary bytes, split at an arbitrary point, to the frame decoder and the
//! control-message and handshake decoders: none of them may panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringflow_proto::{ControlMsg, FrameDecoder, Hello};

fuzz_target!(|data: &[u8]| {
    let (split, bytes) = match data.split_first() {
        Some((s, rest)) => (*s as usize, rest),
        None => return,
    };
    let split = split.min(bytes.len());
    let mut dec = FrameDecoder::new(64 * 1024);
    for part in [&bytes[..split], &bytes[split..]] {
        dec.push(part);
        loop {
            match dec.next_frame() {
                Ok(Some(body)) => {
                    let _ = ringflow_proto::codec::decode_body::<ControlMsg>(&body);
                    let _ = ringflow_proto::codec::decode_body::<Hello>(&body);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = dec.finish();
});
