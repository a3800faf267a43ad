//! `sink.dht`: a stream sink that writes keyed records into the cluster's DHT.
//!
//! The DHT client is async and lives on a thread of its own with its own runtime; the
//! sink hands it each batch and waits for the quorum acknowledgement before taking the
//! next one, so a slow DHT slows the job (backpressure) and an acknowledged batch is
//! durable. Provided to workers by [`crate::WorkerBuilder`] through the registry's
//! extensions.

use std::sync::mpsc;
use std::sync::Mutex;

use ringflow_dht::DhtClient;
use ringflow_net::TlsIdentity;
use ringflow_stream::{Batch, Context, InitContext, OpError, OpResult, Operator, Value};
use serde::Deserialize;

/// What the writer thread is asked, and where it says how it went.
enum Request {
    /// Write pairs (with a fresh view first if `.2`).
    Put(
        Vec<(Vec<u8>, Vec<u8>)>,
        mpsc::Sender<Result<(), String>>,
        bool,
    ),
    /// Delete keys.
    Delete(Vec<Vec<u8>>, mpsc::Sender<Result<(), String>>),
    /// Read keys.
    Get(
        Vec<Vec<u8>>,
        mpsc::Sender<Result<Vec<Option<Vec<u8>>>, String>>,
    ),
}

/// Writes batches to the DHT from a thread of its own.
pub struct DhtBackend {
    tx: Mutex<tokio::sync::mpsc::UnboundedSender<Request>>,
}

impl DhtBackend {
    /// Starts the writer thread; it connects through the coordinator on first use.
    pub fn start(coordinator: String, identity: TlsIdentity, cluster: String) -> Self {
        // An async channel: between batches the runtime keeps running, so QUIC keep-alives
        // and timers of the client's connections are served while the sink is idle.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("dht-sink".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "dht sink: no runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut client: Option<DhtClient> = None;
                    while let Some(request) = rx.recv().await {
                        // One retry on a fresh connection: a connection that went away
                        // while the job was idle is not the job's fault.
                        let mut failure = String::new();
                        let mut answer = None;
                        for attempt in 0..2 {
                            if client.is_none() {
                                match DhtClient::connect(&coordinator, &identity, &cluster).await {
                                    Ok(c) => client = Some(c),
                                    Err(e) => {
                                        failure = format!("connecting to the DHT: {e}");
                                        continue;
                                    }
                                }
                            }
                            let Some(c) = client.as_ref() else { continue };
                            let done = match &request {
                                Request::Put(items, _, fresh) => {
                                    if *fresh {
                                        let _ = c.refresh().await;
                                    }
                                    c.put_many(items.clone()).await.map(|()| None)
                                }
                                Request::Delete(keys, _) => {
                                    let _ = c.refresh().await;
                                    c.delete_many(keys.clone()).await.map(|_| None)
                                }
                                Request::Get(keys, _) => {
                                    // Reads restore jobs after a failure: route them with
                                    // the view after it, not one naming a dead primary.
                                    let _ = c.refresh().await;
                                    c.get_many(keys.clone()).await.map(Some)
                                }
                            };
                            match done {
                                Ok(a) => {
                                    answer = Some(a);
                                    break;
                                }
                                Err(e) => failure = e.to_string(),
                            }
                            if attempt == 0 {
                                tracing::debug!(error = %failure, "dht sink: reconnecting");
                                if let Some(c) = client.take() {
                                    c.close().await;
                                }
                            }
                        }
                        match request {
                            Request::Put(_, reply, _) | Request::Delete(_, reply) => {
                                let _ = reply.send(answer.map(drop).ok_or(failure));
                            }
                            Request::Get(_, reply) => {
                                let _ = reply.send(answer.flatten().ok_or(failure));
                            }
                        }
                    }
                });
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "dht sink: cannot start its thread");
        }
        DhtBackend { tx: Mutex::new(tx) }
    }

    /// Another handle on the same writer thread.
    pub fn handle(&self) -> Result<DhtBackend, String> {
        let tx = self
            .tx
            .lock()
            .map_err(|_| "dht sink poisoned".to_string())?
            .clone();
        Ok(DhtBackend { tx: Mutex::new(tx) })
    }

    /// Writes pairs; with `fresh`, the view is fetched first (a checkpoint written
    /// every few seconds must not wait on a primary that left since the last one).
    fn write(&self, items: Vec<(Vec<u8>, Vec<u8>)>, fresh: bool) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        self.ask(Request::Put(items, reply, fresh))?;
        answer
            .recv()
            .map_err(|_| "the DHT writer thread stopped".to_string())?
    }

    fn read(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, String> {
        let (reply, answer) = mpsc::channel();
        self.ask(Request::Get(keys, reply))?;
        answer
            .recv()
            .map_err(|_| "the DHT writer thread stopped".to_string())?
    }

    fn ask(&self, request: Request) -> Result<(), String> {
        self.tx
            .lock()
            .map_err(|_| "dht sink poisoned".to_string())?
            .send(request)
            .map_err(|_| "the DHT writer thread stopped".to_string())
    }
}

/// Checkpoint parts go to the DHT, written with its quorum.
impl ringflow_stream::checkpoint::CheckpointStore for DhtBackend {
    fn put(&self, items: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        self.write(items, true)
    }

    fn get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, String> {
        self.read(keys)
    }

    fn delete(&self, keys: Vec<Vec<u8>>) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        self.ask(Request::Delete(keys, reply))?;
        answer
            .recv()
            .map_err(|_| "the DHT writer thread stopped".to_string())?
    }
}

/// Config of `sink.dht`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhtSinkConfig {
    /// Prepended to every record key (a namespace such as `"wordcount:"`).
    #[serde(default)]
    pub key_prefix: String,
    /// Store only this top-level field of the record (strings raw, others as JSON);
    /// by default the whole record as JSON.
    #[serde(default)]
    pub value_field: Option<String>,
}

/// `sink.dht`: `PUT prefix+key = value` for every keyed record (unkeyed records are
/// counted under `unkeyed` and skipped).
pub struct DhtSink {
    backend: Option<std::sync::Arc<DhtBackend>>,
    cfg: DhtSinkConfig,
}

impl Operator for DhtSink {
    type In = Value;
    type Out = ();
    type Config = DhtSinkConfig;

    fn create(cfg: DhtSinkConfig, init: &InitContext) -> OpResult<Self> {
        let backend = init.extensions.get::<DhtBackend>();
        if backend.is_none() {
            return Err(OpError("sink.dht is not available in this worker".into()));
        }
        Ok(DhtSink { backend, cfg })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, ()>) -> OpResult {
        let mut items = Vec::with_capacity(batch.len());
        for item in batch {
            let Some(key) = item.key else {
                ctx.count("unkeyed", 1);
                continue;
            };
            let value = match &self.cfg.value_field {
                Some(f) => match item.value.get(f) {
                    Some(Value::String(s)) => s.clone().into_bytes(),
                    Some(v) => v.to_string().into_bytes(),
                    None => {
                        ctx.count("missing_field", 1);
                        continue;
                    }
                },
                None => match &item.value {
                    Value::String(s) => s.clone().into_bytes(),
                    v => v.to_string().into_bytes(),
                },
            };
            items.push((format!("{}{key}", self.cfg.key_prefix).into_bytes(), value));
        }
        if items.is_empty() {
            return Ok(());
        }
        let n = items.len() as u64;
        let backend = self
            .backend
            .as_ref()
            .ok_or_else(|| OpError("sink.dht has no backend".into()))?;
        backend.write(items, false).map_err(OpError)?;
        ctx.count("written", n);
        Ok(())
    }
}
