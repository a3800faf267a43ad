//! Hostile declared lengths must not turn into allocations: this binary counts the largest
//! single allocation while the parsers read headers that promise huge payloads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ringflow_resp::{Limits, ReplyParser, RequestParser};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The only test in this binary, so no other test thread allocates meanwhile.
#[test]
fn declared_lengths_do_not_allocate() {
    let requests: [&[u8]; 4] = [
        b"*1048576\r\n$536870912\r\nabc",
        b"*1048576\r\n",
        b"*2\r\n$536870912\r\n",
        b"*1\r\n$100000000\r\n0123456789",
    ];
    let replies: [&[u8]; 5] = [
        b"*1048576\r\n",
        b"%1048576\r\n",
        b"$536870912\r\nabc",
        b"=536870912\r\ntxt:",
        b"*1048576\r\n*1048576\r\n*1048576\r\n$536870912\r\n",
    ];
    LARGEST.store(0, Ordering::Relaxed);
    for r in requests {
        let mut p = RequestParser::new(Limits::default());
        p.push(r);
        assert_eq!(p.next_command(), Ok(None));
    }
    for r in replies {
        let mut p = ReplyParser::new(Limits::default());
        p.push(r);
        assert_eq!(p.next_reply(), Ok(None));
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 16 * 1024,
        "largest single allocation: {largest} bytes"
    );
}
