//! The coordinator's decisions, sans-IO: membership, failure detection, rebalancing.
//!
//! Time is passed in as milliseconds on any monotonic clock; nothing here reads a clock,
//! touches a socket or a file. The actor around it persists [`PersistedState`] and
//! publishes [`ClusterView`]s when a method reports a change.

use std::collections::BTreeMap;

use ringflow_proto::{
    ClusterStatus, ClusterView, ErrorCode, ErrorReply, Heartbeat, HeartbeatAck, JoinRequest,
    MemberState, MemberStatus, PeerInfo,
};
use ringflow_ring::{assign, Assignment, PartitionId, RingConfig, WorkerId, WorkerSpec};
use serde::{Deserialize, Serialize};

use crate::ClusterError;

/// Timing parameters of failure detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Expected interval between a worker's heartbeats (ms).
    pub heartbeat_interval_ms: u64,
    /// Silence after which a worker is dead (ms). Half of it makes a worker suspect.
    pub failure_timeout_ms: u64,
    /// After a coordinator restart, how long members known from the data directory keep
    /// their partitions while they reconnect (ms).
    pub recovery_grace_ms: u64,
}

/// What the coordinator knows about one worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Worker id.
    pub id: WorkerId,
    /// Its QUIC address.
    pub addr: String,
    /// Capacity weight.
    pub capacity: u32,
    /// Liveness state.
    pub state: MemberState,
    /// When it was last heard from (ms, caller's clock); not persisted.
    #[serde(skip)]
    pub last_seen: Option<u64>,
    /// Epoch it last reported acting on; not persisted.
    #[serde(skip)]
    pub member_epoch: u64,
    /// Generation of its current control session; heartbeats from older ones are refused.
    #[serde(skip)]
    pub session: u64,
    /// Addresses of the services it hosts, by name.
    #[serde(default)]
    pub services: std::collections::BTreeMap<String, String>,
    /// An operator forgot it ([`CoordinatorCore::on_forget`]): it is gone for good, and
    /// what only it held is lost. Cleared when it joins again.
    #[serde(default)]
    pub forgotten: bool,
}

impl Member {
    /// Whether the member counts for assignment (owns partitions).
    pub fn is_live(&self) -> bool {
        matches!(
            self.state,
            MemberState::Alive | MemberState::Suspect | MemberState::Recovering
        )
    }
}

/// What the coordinator writes to its data directory after every change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Format version of this file.
    pub format: u32,
    /// Cluster name.
    pub cluster: String,
    /// Ring parameters fixed at creation.
    pub ring: RingConfig,
    /// Every known member.
    pub members: Vec<Member>,
    /// The current assignment.
    pub assignment: Assignment,
}

/// Current format of [`PersistedState`].
pub const STATE_FORMAT: u32 = 1;

/// Result of a join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinOutcome {
    /// The session generation to quote with later heartbeats.
    pub session: u64,
    /// Whether the assignment (or membership) changed and must be persisted and published.
    pub changed: bool,
}

/// The coordinator's state machine.
#[derive(Clone, Debug)]
pub struct CoordinatorCore {
    cluster: String,
    ring: RingConfig,
    timing: Timing,
    members: BTreeMap<WorkerId, Member>,
    assignment: Assignment,
    next_session: u64,
    /// When [`CoordinatorCore::tick`] last ran (to notice this coordinator's own stalls).
    last_tick: Option<u64>,
    /// Per partition, the last replica set it had at full replication: the members among
    /// which its acknowledged writes are guaranteed (see `below_quorum_by_failures`).
    /// Not persisted: after a restart, the loaded table's full rows.
    full_rows: Vec<Option<Vec<WorkerId>>>,
}

impl CoordinatorCore {
    /// A coordinator for a new cluster, or one resuming from `persisted`.
    ///
    /// Members that were live before the restart come back as `Recovering`: they keep
    /// their partitions for one failure timeout from `now`, so that workers that
    /// reconnect in time cause no movement at all.
    pub fn new(
        cluster: &str,
        ring: RingConfig,
        timing: Timing,
        persisted: Option<PersistedState>,
        now: u64,
    ) -> Result<Self, ClusterError> {
        let mut core = Self {
            cluster: cluster.to_string(),
            ring,
            timing,
            members: BTreeMap::new(),
            assignment: Assignment::empty(ring),
            next_session: 1,
            last_tick: None,
            full_rows: Vec::new(),
        };
        if let Some(p) = persisted {
            if p.cluster != cluster {
                return Err(ClusterError::Config(format!(
                    "data directory belongs to cluster {:?}, configured cluster is {cluster:?}",
                    p.cluster
                )));
            }
            if p.ring.partitions != ring.partitions {
                return Err(ClusterError::Config(format!(
                    "the partition count is fixed at cluster creation: data directory has {}, configuration says {}",
                    p.ring.partitions, ring.partitions
                )));
            }
            p.assignment.validate()?;
            for mut m in p.members {
                if m.is_live() {
                    m.state = MemberState::Recovering;
                    m.last_seen = Some(now);
                }
                core.members.insert(m.id.clone(), m);
            }
            core.assignment = p.assignment;
            core.note_full_rows();
            // A changed replication factor takes effect through an ordinary rebalance.
            if p.ring.replication != ring.replication {
                core.rebalance()?;
            }
        }
        Ok(core)
    }

    /// The current assignment.
    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.assignment.epoch()
    }

    /// Every known member.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The view that workers act on.
    pub fn view(&self) -> ClusterView {
        ClusterView {
            assignment: self.assignment.clone(),
            peers: self
                .members
                .values()
                .filter(|m| m.is_live())
                .map(|m| PeerInfo {
                    id: m.id.clone(),
                    addr: m.addr.clone(),
                    services: m.services.clone(),
                })
                .collect(),
            forgotten: self
                .members
                .values()
                .filter(|m| m.forgotten && m.state == MemberState::Left)
                .map(|m| m.id.clone())
                .collect(),
        }
    }

    /// What to write to disk.
    pub fn persisted(&self) -> PersistedState {
        PersistedState {
            format: STATE_FORMAT,
            cluster: self.cluster.clone(),
            ring: self.ring,
            members: self.members.values().cloned().collect(),
            assignment: self.assignment.clone(),
        }
    }

    fn rebalance(&mut self) -> Result<bool, ClusterError> {
        let specs: Vec<WorkerSpec> = self
            .members
            .values()
            .filter(|m| m.is_live())
            .map(|m| WorkerSpec {
                id: m.id.clone(),
                capacity: m.capacity,
            })
            .collect();
        let planned = assign(Some(&self.assignment), &specs, self.ring)?;
        let frozen = self.below_quorum_by_failures();
        let next = if frozen.is_empty() {
            planned
        } else {
            let mut kept = planned.with_rows_from(&self.assignment, &frozen);
            // Membership changed (that is why this runs) even if no row did: a new epoch
            // makes workers take the view, whose peers no longer list the dead.
            kept.epoch = self.assignment.epoch + 1;
            kept
        };
        if !frozen.is_empty() {
            tracing::warn!(
                partitions = frozen.len(),
                "partitions with fewer live replicas than a quorum keep their replica set \
                 (dead members included) until a majority of it is back: re-planning them \
                 onto new workers would copy an incomplete copy"
            );
        }
        let changed = next != self.assignment;
        self.assignment = next;
        self.note_full_rows();
        Ok(changed)
    }

    /// Remembers the rows of the current table that have full replication.
    fn note_full_rows(&mut self) {
        let n = self.assignment.partitions() as usize;
        self.full_rows.resize(n, None);
        for (p, slot) in self.full_rows.iter_mut().enumerate() {
            let row = self.assignment.replicas(PartitionId(p as u32));
            if row.len() >= self.ring.replication {
                *slot = Some(row.into_iter().cloned().collect());
            }
        }
    }

    /// Partitions that lost a quorum of their last fully replicated set to failures
    /// (declared dead, not left on purpose). Every acknowledged write is on a quorum of
    /// that set (or on every member of the smaller sets since, which were re-planned
    /// from it); with a quorum of it dead, the survivors may all lack a write, and new
    /// members copying from them would make it lost for good. Such a set is not
    /// re-planned: the partition refuses reads and writes (below quorum) until enough of
    /// its members are back.
    fn below_quorum_by_failures(&self) -> Vec<PartitionId> {
        let quorum = self.ring.replication / 2 + 1;
        let dead = |id: &WorkerId| {
            self.members
                .get(id)
                .is_none_or(|m| m.state == MemberState::Dead)
        };
        (0..self.assignment.partitions())
            .map(PartitionId)
            .filter(|&p| {
                let current: Vec<WorkerId>;
                let set = match self.full_rows.get(p.index()).and_then(Option::as_ref) {
                    Some(full) => full,
                    None => {
                        current = self.assignment.replicas(p).into_iter().cloned().collect();
                        &current
                    }
                };
                set.iter().filter(|id| dead(id)).count() >= quorum
            })
            .collect()
    }

    /// A worker joins, or rejoins after a restart or a lost session.
    pub fn on_join(&mut self, req: &JoinRequest, now: u64) -> Result<JoinOutcome, ErrorReply> {
        if req.capacity == 0 {
            return Err(bad_request("capacity must be >= 1"));
        }
        if crate::config::validate_name("worker id", &req.id.0).is_err() {
            return Err(bad_request(&format!(
                "worker id {:?} must be 1 to 128 characters of letters, digits, '.', '_' or '-'",
                req.id.0
            )));
        }
        if req.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad_request(&format!(
                "worker address {:?} is not IP:PORT",
                req.addr
            )));
        }
        let session = self.next_session;
        self.next_session += 1;
        let membership_changed;
        let needs_rebalance = match self.members.get_mut(&req.id) {
            Some(m) => {
                let was_live = m.is_live();
                let capacity_changed = m.capacity != req.capacity;
                membership_changed = m.addr != req.addr
                    || capacity_changed
                    || m.state != MemberState::Alive
                    || m.services != req.services;
                m.addr = req.addr.clone();
                m.services = req.services.clone();
                m.capacity = req.capacity;
                m.state = MemberState::Alive;
                m.forgotten = false;
                m.last_seen = Some(now);
                m.member_epoch = req.known_epoch;
                m.session = session;
                !was_live || capacity_changed
            }
            None => {
                self.members.insert(
                    req.id.clone(),
                    Member {
                        id: req.id.clone(),
                        addr: req.addr.clone(),
                        capacity: req.capacity,
                        state: MemberState::Alive,
                        last_seen: Some(now),
                        member_epoch: req.known_epoch,
                        session,
                        services: req.services.clone(),
                        forgotten: false,
                    },
                );
                membership_changed = true;
                true
            }
        };
        let mut rebalanced = if needs_rebalance {
            self.rebalance().map_err(internal)?
        } else {
            false
        };
        // A worker that acted on a newer epoch than this coordinator knows (its state was
        // lost or restored from an old copy) must accept the coordinator's table: move the
        // epoch past anything the worker has seen.
        if req.known_epoch > self.assignment.epoch {
            tracing::warn!(member = %req.id, known = req.known_epoch, epoch = self.assignment.epoch, "worker knows a newer epoch: moving past it");
            self.assignment.epoch = req.known_epoch + 1;
            rebalanced = true;
        }
        Ok(JoinOutcome {
            session,
            changed: rebalanced || membership_changed,
        })
    }

    /// A heartbeat on control session `session`.
    ///
    /// Returns the ack, and whether the worker is behind and must be sent the view.
    /// A heartbeat from a member that is not live (declared dead, left, unknown) or from
    /// a superseded session is refused: the worker must join again.
    pub fn on_heartbeat(
        &mut self,
        hb: &Heartbeat,
        session: u64,
        now: u64,
    ) -> Result<(HeartbeatAck, bool), ErrorReply> {
        let epoch = self.epoch();
        let Some(m) = self.members.get_mut(&hb.id) else {
            return Err(not_member(&hb.id));
        };
        if !m.is_live() {
            return Err(not_member(&hb.id));
        }
        if m.session != session {
            return Err(superseded(&hb.id));
        }
        m.last_seen = Some(now);
        m.member_epoch = hb.epoch;
        m.state = MemberState::Alive;
        Ok((HeartbeatAck { seq: hb.seq, epoch }, hb.epoch < epoch))
    }

    /// A worker leaves on purpose, from its current session. Returns whether anything changed.
    pub fn on_leave(&mut self, id: &WorkerId, session: u64) -> Result<bool, ErrorReply> {
        let Some(m) = self.members.get_mut(id) else {
            return Err(not_member(id));
        };
        if m.is_live() && m.session != session {
            return Err(superseded(id));
        }
        if m.state == MemberState::Left {
            return Ok(false);
        }
        m.state = MemberState::Left;
        m.last_seen = None;
        self.rebalance().map_err(internal)?;
        Ok(true)
    }

    /// An operator's decision that a dead worker will not come back: it counts as having
    /// left, so the replica sets kept for it (below a quorum by failures) are planned
    /// again from their survivors, whatever they lack. Refused for a live member (stop it
    /// first, or let it leave). Returns whether anything changed.
    pub fn on_forget(&mut self, id: &WorkerId) -> Result<bool, ErrorReply> {
        let Some(m) = self.members.get_mut(id) else {
            return Err(bad_request(&format!("{id} is not a member")));
        };
        match m.state {
            MemberState::Left => Ok(false),
            MemberState::Dead => {
                m.state = MemberState::Left;
                m.forgotten = true;
                m.last_seen = None;
                tracing::warn!(member = %id, "an operator forgot a dead worker: its replica sets are planned again from their survivors");
                let before = self.assignment.epoch;
                self.rebalance().map_err(internal)?;
                // Workers must see the forgotten list even if no row changed (handoffs
                // waiting for its copies stop waiting): a new view needs a new epoch.
                if self.assignment.epoch == before {
                    self.assignment.epoch += 1;
                }
                Ok(true)
            }
            state => Err(bad_request(&format!(
                "{id} is {state:?}, not dead: only a worker the coordinator declared dead can be \
                 forgotten (stop it and wait for the failure timeout, or let it leave)"
            ))),
        }
    }

    /// Failure detection. Returns whether membership or the assignment changed.
    ///
    /// Ticks come every half heartbeat interval. A gap between two ticks longer than half
    /// the failure timeout means this coordinator itself did not run (it was paused,
    /// swapped out or suspended): the members' silence during the gap is not theirs, and
    /// their heartbeats may still be queued. So, as after a restart, every live member
    /// gets a full failure timeout from `now` before it can be declared dead.
    pub fn tick(&mut self, now: u64) -> Result<bool, ClusterError> {
        if let Some(prev) = self.last_tick {
            let gap = now.saturating_sub(prev);
            if gap > self.timing.failure_timeout_ms / 2 {
                tracing::warn!(
                    gap_ms = gap,
                    "the coordinator did not run for a while: members get a grace period"
                );
                for m in self.members.values_mut().filter(|m| m.is_live()) {
                    m.last_seen = Some(now);
                }
            }
        }
        self.last_tick = Some(now);
        let mut died = false;
        for m in self.members.values_mut().filter(|m| m.is_live()) {
            let silent = now.saturating_sub(m.last_seen.unwrap_or(now));
            let limit = if m.state == MemberState::Recovering {
                self.timing
                    .recovery_grace_ms
                    .max(self.timing.failure_timeout_ms)
            } else {
                self.timing.failure_timeout_ms
            };
            if silent > limit {
                tracing::warn!(member = %m.id, silent_ms = silent, "worker declared dead");
                m.state = MemberState::Dead;
                died = true;
            } else if m.state == MemberState::Alive && silent > self.timing.failure_timeout_ms / 2 {
                tracing::info!(member = %m.id, silent_ms = silent, "worker suspect");
                m.state = MemberState::Suspect;
            }
        }
        if died {
            self.rebalance()?;
        }
        Ok(died)
    }

    /// The status report.
    pub fn status(&self, now: u64) -> ClusterStatus {
        let counts = self.assignment.counts();
        let live = self.members.values().filter(|m| m.is_live()).count();
        let target = (self.ring.replication).min(live);
        ClusterStatus {
            cluster: self.cluster.clone(),
            epoch: self.epoch(),
            partitions: self.ring.partitions,
            replication: self.ring.replication as u32,
            members: self
                .members
                .values()
                .map(|m| {
                    let (p, prim) = counts.get(&m.id).copied().unwrap_or((0, 0));
                    MemberStatus {
                        id: m.id.clone(),
                        addr: m.addr.clone(),
                        capacity: m.capacity,
                        state: m.state,
                        partitions: p as u32,
                        primaries: prim as u32,
                        last_heartbeat_ms_ago: m.last_seen.map(|t| now.saturating_sub(t)),
                        member_epoch: m.member_epoch,
                        services: m.services.clone(),
                    }
                })
                .collect(),
            unowned: self.assignment.unowned().into_iter().map(|p| p.0).collect(),
            under_replicated: self.assignment.under_replicated(target).len() as u32,
        }
    }
}

fn bad_request(msg: &str) -> ErrorReply {
    ErrorReply {
        code: ErrorCode::BadRequest,
        message: msg.to_string(),
    }
}

fn not_member(id: &WorkerId) -> ErrorReply {
    ErrorReply {
        code: ErrorCode::NotMember,
        message: format!("{id} is not a live member: join again"),
    }
}

fn superseded(id: &WorkerId) -> ErrorReply {
    ErrorReply {
        code: ErrorCode::Superseded,
        message: format!("another session has joined as {id}: is the same worker running twice?"),
    }
}

fn internal(e: ClusterError) -> ErrorReply {
    ErrorReply {
        code: ErrorCode::Internal,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        heartbeat_interval_ms: 100,
        failure_timeout_ms: 1000,
        recovery_grace_ms: 3000,
    };

    fn ring() -> RingConfig {
        RingConfig::new(256, 3).unwrap()
    }

    fn join(id: &str, epoch: u64) -> JoinRequest {
        JoinRequest {
            id: id.into(),
            addr: "127.0.0.1:9000".into(),
            capacity: 1,
            known_epoch: epoch,
            services: Default::default(),
        }
    }

    fn cluster_of(n: usize) -> (CoordinatorCore, Vec<u64>) {
        let mut c = CoordinatorCore::new("c", ring(), T, None, 0).unwrap();
        let sessions = (0..n)
            .map(|i| c.on_join(&join(&format!("w{i}"), 0), 0).unwrap().session)
            .collect();
        (c, sessions)
    }

    fn beat(
        c: &mut CoordinatorCore,
        id: &str,
        session: u64,
        now: u64,
    ) -> Result<(HeartbeatAck, bool), ErrorReply> {
        let hb = Heartbeat {
            id: id.into(),
            epoch: c.epoch(),
            seq: now,
        };
        c.on_heartbeat(&hb, session, now)
    }

    #[test]
    fn three_workers_own_everything_with_three_replicas() {
        let (c, _) = cluster_of(3);
        let s = c.status(0);
        assert!(s.unowned.is_empty());
        assert_eq!(s.under_replicated, 0);
        for p in 0..256 {
            assert_eq!(
                c.assignment().replicas(ringflow_ring::PartitionId(p)).len(),
                3
            );
        }
        assert!(s.members.iter().all(|m| m.partitions == 256));
    }

    #[test]
    fn silent_worker_goes_suspect_then_dead_and_loses_partitions() {
        let (mut c, s) = cluster_of(4);
        let before = c.epoch();
        for now in (100..=600).step_by(100) {
            for (i, session) in s.iter().take(3).enumerate() {
                beat(&mut c, &format!("w{i}"), *session, now).unwrap();
            }
            assert!(!c.tick(now).unwrap());
        }
        assert_eq!(
            c.members.get(&"w3".into()).unwrap().state,
            MemberState::Suspect
        );
        for (i, session) in s.iter().take(3).enumerate() {
            beat(&mut c, &format!("w{i}"), *session, 1001).unwrap();
        }
        assert!(c.tick(1001).unwrap());
        assert_eq!(
            c.members.get(&"w3".into()).unwrap().state,
            MemberState::Dead
        );
        assert!(c.epoch() > before);
        assert!(c.assignment().partitions_of(&"w3".into()).is_empty());
        assert!(c.status(1001).unowned.is_empty());
        // Its heartbeats are refused until it joins again, and then it gets partitions back.
        assert_eq!(
            beat(&mut c, "w3", s[3], 1100).unwrap_err().code,
            ErrorCode::NotMember
        );
        let epoch = c.epoch();
        let out = c.on_join(&join("w3", epoch), 1100).unwrap();
        assert!(out.changed);
        assert!(c.epoch() > epoch);
        assert!(!c.assignment().partitions_of(&"w3".into()).is_empty());
    }

    #[test]
    fn stale_epoch_heartbeat_asks_for_the_view() {
        let (mut c, s) = cluster_of(3);
        let hb = Heartbeat {
            id: "w0".into(),
            epoch: 0,
            seq: 1,
        };
        let (ack, behind) = c.on_heartbeat(&hb, s[0], 10).unwrap();
        assert!(behind);
        assert_eq!(ack.epoch, c.epoch());
        let (_, behind) = beat(&mut c, "w0", s[0], 11).unwrap();
        assert!(!behind);
    }

    #[test]
    fn superseded_session_is_refused() {
        let (mut c, s) = cluster_of(3);
        let again = c.on_join(&join("w0", c.epoch()), 5).unwrap();
        assert!(
            !again.changed,
            "a rejoin of a live member with the same address changes nothing"
        );
        assert_eq!(
            beat(&mut c, "w0", s[0], 6).unwrap_err().code,
            ErrorCode::Superseded
        );
        assert!(beat(&mut c, "w0", again.session, 6).is_ok());
    }

    #[test]
    fn leave_moves_partitions_at_once() {
        let (mut c, _) = cluster_of(4);
        let epoch = c.epoch();
        let session = c.members.get(&"w1".into()).unwrap().session;
        assert_eq!(
            c.on_leave(&"w1".into(), session + 100).unwrap_err().code,
            ErrorCode::Superseded
        );
        assert!(c.on_leave(&"w1".into(), session).unwrap());
        assert!(c.epoch() > epoch);
        assert!(c.assignment().partitions_of(&"w1".into()).is_empty());
        assert!(!c.on_leave(&"w1".into(), session).unwrap());
    }

    #[test]
    fn restart_recovers_without_movement_when_workers_return() {
        let (c, _) = cluster_of(3);
        let saved = c.persisted();
        let mut r = CoordinatorCore::new("c", ring(), T, Some(saved.clone()), 50_000).unwrap();
        assert_eq!(r.assignment(), c.assignment());
        assert!(r.members().all(|m| m.state == MemberState::Recovering));
        for i in 0..3 {
            let out = r
                .on_join(&join(&format!("w{i}"), c.epoch()), 50_100)
                .unwrap();
            assert_eq!(r.epoch(), c.epoch(), "no movement on rejoin");
            assert!(out.changed, "state Recovering -> Alive is persisted");
        }
        assert!(!r.tick(50_500).unwrap());
        assert_eq!(r.epoch(), c.epoch());
    }

    /// A coordinator paused for many failure timeouts (SIGSTOP, a VM stall) does not empty
    /// the ring when it resumes: members get a full timeout to be heard from again, and
    /// only one that stays silent after that is declared dead.
    #[test]
    fn a_stalled_coordinator_gives_members_a_grace_period() {
        let (mut c, s) = cluster_of(3);
        for now in (100..=400).step_by(100) {
            for (i, session) in s.iter().enumerate() {
                beat(&mut c, &format!("w{i}"), *session, now).unwrap();
            }
            assert!(!c.tick(now).unwrap());
        }
        let epoch = c.epoch();
        // The coordinator's own gap: 20 failure timeouts without a tick or a heartbeat.
        let resumed = 20_400;
        assert!(
            !c.tick(resumed).unwrap(),
            "nobody dies for the coordinator's pause"
        );
        assert!(c.members().all(|m| m.is_live()));
        assert_eq!(c.epoch(), epoch);
        // w0 and w1 are heard from again; w2 stays silent and dies one timeout later.
        for now in (resumed + 100..=resumed + 1000).step_by(100) {
            beat(&mut c, "w0", s[0], now).unwrap();
            beat(&mut c, "w1", s[1], now).unwrap();
            assert!(!c.tick(now).unwrap(), "within the grace at {now}");
        }
        beat(&mut c, "w0", s[0], resumed + 1100).unwrap();
        beat(&mut c, "w1", s[1], resumed + 1100).unwrap();
        assert!(c.tick(resumed + 1100).unwrap());
        assert_eq!(
            c.members.get(&"w2".into()).unwrap().state,
            MemberState::Dead
        );
        assert_eq!(
            c.members.get(&"w0".into()).unwrap().state,
            MemberState::Alive
        );
    }

    /// Beats only for w0 (w1 and w2 fall silent) until w1 is declared dead; the time then.
    fn only_w0_beats_until_w1_is_dead(c: &mut CoordinatorCore, s: &[u64]) -> u64 {
        let mut now = 0;
        while c.members.get(&"w1".into()).unwrap().state != MemberState::Dead {
            now += 100;
            beat(c, "w0", s[0], now).unwrap();
            c.tick(now).unwrap();
            assert!(now < 10_000, "w1 and w2 are declared dead");
        }
        now
    }

    /// Two of three replicas die: the sets are not re-planned onto the survivor alone nor
    /// onto a worker that joins meanwhile (it would copy from one replica what a quorum
    /// acknowledged); once a majority of each set is back, they are re-planned as usual.
    #[test]
    fn a_replica_set_below_quorum_by_failures_waits_for_a_majority_of_its_members() {
        let (mut c, s) = cluster_of(3);
        let now = only_w0_beats_until_w1_is_dead(&mut c, &s);
        assert_eq!(
            c.members.get(&"w2".into()).unwrap().state,
            MemberState::Dead
        );
        let full = |c: &CoordinatorCore| {
            (0..256).all(|p| c.assignment.replicas(PartitionId(p)).len() == 3)
        };
        assert!(full(&c), "rows keep their dead members");
        c.on_join(&join("w3", c.epoch()), now).unwrap();
        assert!(
            c.assignment.partitions_of(&"w3".into()).is_empty(),
            "a new worker copies nothing while a quorum of the old set is dead"
        );
        // w1 comes back: a majority of every set is live, so the dead w2 is replaced.
        c.on_join(&join("w1", c.epoch()), now + 10).unwrap();
        let w2: WorkerId = "w2".into();
        assert!(c.assignment.partitions_of(&w2).is_empty(), "w2 replaced");
        assert!(!c.assignment.partitions_of(&"w3".into()).is_empty());
    }

    /// An operator forgets the two dead workers of kept sets: the sets are planned again
    /// from the survivor and a new worker. A live member cannot be forgotten.
    #[test]
    fn forgetting_dead_workers_re_plans_the_sets_kept_for_them() {
        let (mut c, s) = cluster_of(3);
        let now = only_w0_beats_until_w1_is_dead(&mut c, &s);
        let e = c.on_forget(&"w0".into()).unwrap_err();
        assert!(e.message.contains("not dead"), "{}", e.message);
        assert!(c.on_forget(&"nobody".into()).is_err());
        c.on_join(&join("w3", c.epoch()), now).unwrap();
        assert!(c.assignment.partitions_of(&"w3".into()).is_empty());
        assert!(c.on_forget(&"w1".into()).unwrap());
        // w1 counts as left: of the last full set {w0, w1, w2} only w2 is dead, less than
        // a quorum, so the sets are planned again.
        assert!(
            !c.assignment.partitions_of(&"w3".into()).is_empty(),
            "planned again onto the new worker"
        );
        assert!(c.assignment.partitions_of(&"w1".into()).is_empty());
        assert!(c.on_forget(&"w2".into()).unwrap());
        assert!(
            !c.on_forget(&"w2".into()).unwrap(),
            "forgetting twice changes nothing"
        );
        assert!(c.assignment.partitions_of(&"w2".into()).is_empty());
        assert!((0..256).all(|p| c.assignment.replicas(PartitionId(p)).len() == 2));
    }

    /// The two die one after the other: after the first, the sets shrink to the two
    /// survivors (no worker to replace it); after the second, the last survivor may lack
    /// writes the two dead acknowledged, so the sets are kept.
    #[test]
    fn failures_one_after_another_count_against_the_last_full_set() {
        let (mut c, s) = cluster_of(3);
        let mut now = 0;
        let state = |c: &CoordinatorCore, id: &str| c.members.get(&id.into()).unwrap().state;
        while state(&c, "w1") != MemberState::Dead {
            now += 100;
            beat(&mut c, "w0", s[0], now).unwrap();
            beat(&mut c, "w2", s[2], now).unwrap();
            c.tick(now).unwrap();
        }
        assert!((0..256).all(|p| c.assignment.replicas(PartitionId(p)).len() == 2));
        while state(&c, "w2") != MemberState::Dead {
            now += 100;
            beat(&mut c, "w0", s[0], now).unwrap();
            c.tick(now).unwrap();
        }
        assert!(
            (0..256).all(|p| c.assignment.replicas(PartitionId(p)).len() == 2),
            "kept with w2"
        );
        c.on_join(&join("w3", c.epoch()), now).unwrap();
        assert!(c.assignment.partitions_of(&"w3".into()).is_empty());
    }

    /// Replication 2: every acknowledged write is on both replicas, so the survivor of
    /// one failure has them all and the set is re-planned at once.
    #[test]
    fn with_replication_two_one_failure_is_re_planned() {
        let mut c =
            CoordinatorCore::new("c", RingConfig::new(256, 2).unwrap(), T, None, 0).unwrap();
        let s: Vec<u64> = (0..4)
            .map(|i| c.on_join(&join(&format!("w{i}"), 0), 0).unwrap().session)
            .collect();
        let mut now = 0;
        while c.members.get(&"w3".into()).unwrap().state != MemberState::Dead {
            now += 100;
            for (i, session) in s.iter().enumerate().take(3) {
                beat(&mut c, &format!("w{i}"), *session, now).unwrap();
            }
            c.tick(now).unwrap();
        }
        assert!(c.assignment.partitions_of(&"w3".into()).is_empty());
        assert!((0..256).all(|p| c.assignment.replicas(PartitionId(p)).len() == 2));
    }

    /// A worker that leaves on purpose hands its partitions over: leaves never freeze.
    #[test]
    fn replica_sets_shrunk_by_leaves_are_re_planned() {
        let (mut c, s) = cluster_of(3);
        c.on_leave(&"w1".into(), s[1]).unwrap();
        c.on_leave(&"w2".into(), s[2]).unwrap();
        assert!((0..256).all(|p| c.assignment.replicas(PartitionId(p)).len() == 1));
    }

    #[test]
    fn restart_declares_absent_workers_dead_after_the_timeout() {
        let (c, _) = cluster_of(3);
        let mut r = CoordinatorCore::new("c", ring(), T, Some(c.persisted()), 10_000).unwrap();
        r.on_join(&join("w0", c.epoch()), 10_010).unwrap();
        r.on_join(&join("w1", c.epoch()), 10_010).unwrap();
        let s0 = r.members.get(&"w0".into()).unwrap().session;
        let s1 = r.members.get(&"w1".into()).unwrap().session;
        for now in (10_500..=12_900).step_by(400) {
            beat(&mut r, "w0", s0, now).unwrap();
            beat(&mut r, "w1", s1, now).unwrap();
            assert!(
                !r.tick(now).unwrap(),
                "recovering members get the grace period"
            );
        }
        assert_eq!(
            r.members.get(&"w2".into()).unwrap().state,
            MemberState::Recovering
        );
        beat(&mut r, "w0", s0, 13_000).unwrap();
        beat(&mut r, "w1", s1, 13_000).unwrap();
        assert!(r.tick(13_001).unwrap());
        assert_eq!(
            r.members.get(&"w2".into()).unwrap().state,
            MemberState::Dead
        );
    }

    #[test]
    fn a_worker_ahead_of_the_coordinator_moves_the_epoch_past_it() {
        let (c, _) = cluster_of(3);
        let mut r = CoordinatorCore::new("c", ring(), T, Some(c.persisted()), 0).unwrap();
        let ahead = c.epoch() + 5;
        let out = r.on_join(&join("w0", ahead), 10).unwrap();
        assert!(out.changed);
        assert!(r.epoch() > ahead, "epoch {} must pass {ahead}", r.epoch());
    }

    #[test]
    fn persisted_partition_count_is_enforced() {
        let (c, _) = cluster_of(3);
        let other = RingConfig::new(512, 3).unwrap();
        assert!(CoordinatorCore::new("c", other, T, Some(c.persisted()), 0).is_err());
        assert!(CoordinatorCore::new("other", ring(), T, Some(c.persisted()), 0).is_err());
    }

    #[test]
    fn bad_joins_are_refused() {
        let mut c = CoordinatorCore::new("c", ring(), T, None, 0).unwrap();
        let mut j = join("w", 0);
        j.capacity = 0;
        assert_eq!(c.on_join(&j, 0).unwrap_err().code, ErrorCode::BadRequest);
        let mut j = join("w", 0);
        j.addr = "nowhere".into();
        assert!(c.on_join(&j, 0).is_err());
        assert!(c.on_join(&join("../x", 0), 0).is_err());
        assert_eq!(c.members().count(), 0);
    }
}
