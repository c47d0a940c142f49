//! Delivery control for one endpoint, as the node that owns its queue keeps it:
//! the throttle (a token bucket at the endpoint's `throttleRate`), adaptive
//! concurrency (AIMD), holds the receiver asked for (429, 502, 503, 504,
//! `Retry-After`), the circuit breaker, and how long it has been failing.
//!
//! Everything here is plain state changed by [`Control`]'s methods with the time
//! passed in, so the dispatcher decides and the tests can drive it. What other
//! nodes and the API must see is written to the endpoint as [`EndpointHealth`]
//! whenever a method reports a change.

use std::collections::VecDeque;
use std::time::Duration;

use hookd_store::{BreakerState, EndpointHealth};

use crate::sender::SendResult;

#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Longest `Retry-After` honoured (longer ones are cut to this).
    pub retry_after_max: Duration,
    /// How long the first 429/502/503/504 without `Retry-After` holds the
    /// endpoint back; it doubles with each one in a row, up to `hold_max`.
    pub hold_base: Duration,
    pub hold_max: Duration,
    pub breaker: BreakerConfig,
    /// An endpoint failing this long with no success is disabled.
    pub disable_after: Duration,
}

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Opens when at least `min_requests` in the window failed at this ratio or more.
    pub failure_ratio: f64,
    pub min_requests: u32,
    pub window: Duration,
    /// Open this long before the first probe; doubles after a failed probe, up to `max_open`.
    pub open_for: Duration,
    pub max_open: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            retry_after_max: Duration::from_secs(3600),
            hold_base: Duration::from_secs(1),
            hold_max: Duration::from_secs(60),
            breaker: BreakerConfig {
                failure_ratio: 0.5,
                min_requests: 20,
                window: Duration::from_secs(60),
                open_for: Duration::from_secs(30),
                max_open: Duration::from_secs(600),
            },
            disable_after: Duration::from_secs(5 * 86_400),
        }
    }
}

/// How one attempt counts for the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The endpoint answered as a healthy one does: any status but 429 and 5xx
    /// (a 4xx is about the message, not the endpoint).
    pub healthy: bool,
    /// Halves the concurrency: a timeout, 429 or 503.
    pub overloaded: bool,
    /// Holds the endpoint back: 429, 502, 503, 504.
    pub throttled: bool,
}

impl Verdict {
    pub fn of(result: &SendResult) -> Verdict {
        let healthy = match result.status {
            Some(s) => s != 429 && s < 500,
            None => false,
        };
        Verdict {
            healthy,
            overloaded: result.timed_out || matches!(result.status, Some(429 | 503)),
            throttled: matches!(result.status, Some(429 | 502 | 503 | 504)),
        }
    }
}

/// What changed with an attempt's result, for the dispatcher to act on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// The endpoint is held back (newly, or for longer): release what waits.
    pub held: bool,
    /// The breaker moved, or failing started or stopped: write the health.
    pub health: bool,
    /// Failing has lasted past `disable_after`: disable the endpoint.
    pub disable: bool,
}

#[derive(Debug, Clone)]
pub struct Control {
    // Throttle: a token bucket refilled at the endpoint's rate.
    tokens: f64,
    refilled_at: i64,
    // AIMD: the concurrency this endpoint gets now, between 1 and its cap.
    limit: f64,
    decreased_at: i64,
    // Holds.
    hold_until: i64,
    throttled_since: Option<i64>,
    throttles_in_row: u32,
    // Breaker.
    breaker: BreakerState,
    window: Window,
    opened_at: Option<i64>,
    next_probe_at: i64,
    open_for_ms: i64,
    probing: bool,
    /// The delivery sent as the half-open probe.
    probe: Option<i64>,
    /// The claim loop is woken at this time (Unix ms) for deliveries held back until then.
    pub wake_armed: i64,
    // Auto-disable: since when every attempt failed.
    failing_since: Option<i64>,
    /// Last time anything happened here (for forgetting idle endpoints).
    pub touched_at: i64,
    /// The endpoint's revision when this state was made.
    revision: i64,
}

impl Control {
    /// Fresh state for an endpoint, continuing from the health another node (or
    /// an earlier run) wrote: an open breaker stays open, a hold is kept.
    pub fn new(
        config: &ControlConfig,
        cap: usize,
        health: Option<&EndpointHealth>,
        revision: i64,
        now: i64,
    ) -> Control {
        let mut c = Control {
            tokens: f64::MAX,
            refilled_at: now,
            limit: cap as f64,
            decreased_at: 0,
            hold_until: 0,
            throttled_since: None,
            throttles_in_row: 0,
            breaker: BreakerState::Closed,
            window: Window::default(),
            opened_at: None,
            next_probe_at: 0,
            open_for_ms: config.breaker.open_for.as_millis() as i64,
            probing: false,
            probe: None,
            wake_armed: 0,
            failing_since: None,
            touched_at: now,
            revision,
        };
        if let Some(h) = health {
            if h.breaker != BreakerState::Closed {
                c.breaker = BreakerState::Open;
                c.opened_at = h.opened_at;
                c.next_probe_at = h.next_probe_at.unwrap_or(now);
            }
            c.open_for_ms = h.open_for_ms.max(c.open_for_ms);
            if let Some(until) = h.throttled_until.filter(|u| *u > now) {
                c.hold_until = until;
                c.throttled_since = h.throttled_since;
            }
            c.failing_since = h.failing_since;
        }
        c
    }

    /// Whether this state predates an enable of the endpoint: the endpoint
    /// changed since, and its health was cleared (which only enabling does).
    pub fn is_stale(&self, endpoint: &hookd_store::Endpoint) -> bool {
        endpoint.revision > self.revision
            && endpoint.health.is_none()
            && (self.failing_since.is_some() || self.breaker != BreakerState::Closed)
    }

    /// Takes a token for one request at `rate` per second (`None`: unlimited);
    /// `Err(ms)` says how long until the next one.
    pub fn take_token(&mut self, rate: Option<u32>, now: i64) -> Result<(), i64> {
        let Some(rate) = rate.filter(|r| *r > 0) else { return Ok(()) };
        let rate = f64::from(rate);
        // A tenth of a second's worth may go at once (at least two, so a timer
        // that fires late does not lose the token that accrued meanwhile).
        let burst = (rate / 10.0).max(2.0);
        let elapsed = (now - self.refilled_at).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens.min(burst) + elapsed * rate).min(burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / rate) * 1000.0).ceil().max(1.0) as i64)
        }
    }

    /// Requests that may be in flight now: the AIMD limit within `cap`, and one
    /// (the probe) while the breaker is half-open.
    pub fn concurrency(&self, cap: usize) -> usize {
        if self.breaker == BreakerState::HalfOpen {
            return usize::from(!self.probing);
        }
        (self.limit.floor() as usize).clamp(1, cap.max(1))
    }

    /// Until when nothing may be sent (a hold, or an open breaker), if that is
    /// later than `now`. An open breaker whose time is up turns half-open here.
    pub fn blocked_until(&mut self, now: i64) -> Option<i64> {
        if self.breaker == BreakerState::Open {
            if now < self.next_probe_at {
                return Some(self.next_probe_at.max(self.hold_until));
            }
            self.breaker = BreakerState::HalfOpen;
            self.probing = false;
        }
        (self.hold_until > now).then_some(self.hold_until)
    }

    /// Delivery `id` is starting (the probe, when half-open).
    pub fn started(&mut self, id: i64) {
        if self.breaker == BreakerState::HalfOpen {
            self.probing = true;
            self.probe = Some(id);
        }
    }

    /// Delivery `id` ended without an attempt (released, paused, canceled): if it
    /// was the probe, another may go.
    pub fn not_attempted(&mut self, id: i64) {
        if self.probe == Some(id) {
            self.probing = false;
            self.probe = None;
        }
    }

    /// Folds an attempt's result in. `retry_after` is the receiver's (already
    /// capped); `cap` the endpoint's concurrency cap.
    pub fn record(
        &mut self,
        config: &ControlConfig,
        verdict: Verdict,
        retry_after: Option<Duration>,
        cap: usize,
        now: i64,
    ) -> Changed {
        self.touched_at = now;
        let mut changed = Changed::default();

        // Adaptive concurrency: halve at most once per 100 ms (the requests in
        // flight when the receiver got overloaded all report it), grow by one
        // per round of successes.
        if verdict.overloaded {
            if now - self.decreased_at >= 100 {
                self.limit = (self.limit / 2.0).max(1.0);
                self.decreased_at = now;
            }
        } else if verdict.healthy {
            self.limit = (self.limit + 1.0 / self.limit.max(1.0)).min(cap.max(1) as f64);
        }

        // Holds.
        if verdict.throttled {
            self.throttles_in_row = self.throttles_in_row.saturating_add(1);
            let hold = retry_after.unwrap_or_else(|| {
                let doubled = config.hold_base.saturating_mul(1 << (self.throttles_in_row - 1).min(16));
                doubled.min(config.hold_max)
            });
            let until = now + hold.as_millis() as i64;
            if until > self.hold_until {
                self.hold_until = until;
                if self.throttled_since.is_none() {
                    self.throttled_since = Some(now);
                }
                changed.held = true;
                changed.health = true;
            }
        } else if verdict.healthy {
            self.throttles_in_row = 0;
            if self.hold_until <= now {
                self.throttled_since = None;
            }
        }

        // Sustained failure.
        if verdict.healthy {
            if self.failing_since.take().is_some() {
                changed.health = true;
            }
        } else {
            match self.failing_since {
                None => {
                    self.failing_since = Some(now);
                    changed.health = true;
                }
                Some(since) if now - since >= config.disable_after.as_millis() as i64 => changed.disable = true,
                Some(_) => {}
            }
        }

        // The breaker.
        let b = &config.breaker;
        match self.breaker {
            BreakerState::HalfOpen if self.probing => {
                self.probing = false;
                self.probe = None;
                if verdict.healthy {
                    self.breaker = BreakerState::Closed;
                    self.window.clear();
                    self.open_for_ms = b.open_for.as_millis() as i64;
                } else {
                    self.open_for_ms = (self.open_for_ms * 2).min(b.max_open.as_millis() as i64);
                    self.open(now);
                    changed.held = true;
                }
                changed.health = true;
            }
            BreakerState::Closed => {
                self.window.add(b.window, now, !verdict.healthy);
                let (failures, requests) = self.counts();
                if requests >= b.min_requests && f64::from(failures) >= b.failure_ratio * f64::from(requests) {
                    self.open(now);
                    changed.held = true;
                    changed.health = true;
                }
            }
            // Results of requests that started before the breaker opened.
            _ => {}
        }
        changed
    }

    fn open(&mut self, now: i64) {
        self.breaker = BreakerState::Open;
        self.opened_at = Some(now);
        self.next_probe_at = now + self.open_for_ms;
    }

    fn counts(&self) -> (u32, u32) {
        self.window.counts()
    }

    pub fn breaker(&self) -> BreakerState {
        self.breaker
    }

    /// Whether this state says nothing a fresh one would not (so it may be forgotten).
    pub fn is_idle(&self, cap: usize, now: i64) -> bool {
        self.breaker == BreakerState::Closed
            && self.hold_until <= now
            && self.failing_since.is_none()
            && self.window.is_empty()
            && self.limit >= cap as f64
    }

    /// Drops breaker window counts older than the window.
    pub fn expire_window(&mut self, config: &ControlConfig, now: i64) {
        self.window.expire(config.breaker.window, now);
    }

    /// The report written to the endpoint.
    pub fn health(&self, now: i64) -> EndpointHealth {
        let (failures, requests) = self.counts();
        EndpointHealth {
            breaker: self.breaker,
            failures,
            requests,
            opened_at: self.opened_at.filter(|_| self.breaker != BreakerState::Closed),
            next_probe_at: (self.breaker == BreakerState::Open).then_some(self.next_probe_at),
            open_for_ms: self.open_for_ms,
            throttled_since: self.throttled_since.filter(|_| self.hold_until > now),
            throttled_until: (self.hold_until > now).then_some(self.hold_until),
            failing_since: self.failing_since,
            updated_at: now,
        }
    }
}

/// The breaker's sliding window as counts in ten slices of it: constant memory
/// and time per request however busy the endpoint.
#[derive(Debug, Clone, Default)]
struct Window {
    /// (slice start, failures, requests), oldest first.
    slices: VecDeque<(i64, u32, u32)>,
}

const WINDOW_SLICES: i64 = 10;

impl Window {
    fn add(&mut self, window: Duration, now: i64, failed: bool) {
        self.expire(window, now);
        let width = (window.as_millis() as i64 / WINDOW_SLICES).max(1);
        let start = now - now.rem_euclid(width);
        match self.slices.back_mut() {
            Some(last) if last.0 == start => {
                last.1 += u32::from(failed);
                last.2 += 1;
            }
            _ => self.slices.push_back((start, u32::from(failed), 1)),
        }
    }

    fn expire(&mut self, window: Duration, now: i64) {
        let horizon = now - window.as_millis() as i64;
        while self.slices.front().is_some_and(|(start, ..)| *start < horizon) {
            self.slices.pop_front();
        }
    }

    fn counts(&self) -> (u32, u32) {
        self.slices.iter().fold((0, 0), |(f, r), (_, sf, sr)| (f + sf, r + sr))
    }

    fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    fn clear(&mut self) {
        self.slices.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ControlConfig {
        let mut c = ControlConfig::default();
        c.breaker.min_requests = 4;
        c.breaker.open_for = Duration::from_secs(10);
        c
    }

    const OK: Verdict = Verdict { healthy: true, overloaded: false, throttled: false };
    const FAIL: Verdict = Verdict { healthy: false, overloaded: false, throttled: false };
    const BUSY: Verdict = Verdict { healthy: false, overloaded: true, throttled: true };
    const TIMEOUT: Verdict = Verdict { healthy: false, overloaded: true, throttled: false };

    #[test]
    fn the_bucket_spaces_requests_at_the_rate() {
        let cfg = config();
        let mut c = Control::new(&cfg, 10, None, 0, 0);
        // 10/s: a burst of two, then one every 100 ms.
        assert_eq!(c.take_token(Some(10), 0), Ok(()));
        assert_eq!(c.take_token(Some(10), 0), Ok(()));
        assert_eq!(c.take_token(Some(10), 0), Err(100));
        assert_eq!(c.take_token(Some(10), 50), Err(50));
        assert_eq!(c.take_token(Some(10), 100), Ok(()));
        // Over ten seconds, at most rate × time plus the burst.
        let (mut sent, mut t) = (0, 200);
        while t < 10_200 {
            if c.take_token(Some(10), t).is_ok() {
                sent += 1;
            }
            t += 7;
        }
        assert!((99..=102).contains(&sent), "{sent}");
        assert_eq!(c.take_token(None, t), Ok(()));
    }

    #[test]
    fn overload_halves_concurrency_and_success_grows_it_back() {
        let cfg = config();
        let mut c = Control::new(&cfg, 16, None, 0, 0);
        assert_eq!(c.concurrency(16), 16);
        c.record(&cfg, TIMEOUT, None, 16, 1_000);
        assert_eq!(c.concurrency(16), 8);
        // Another report within 100 ms is the same overload.
        c.record(&cfg, TIMEOUT, None, 16, 1_050);
        assert_eq!(c.concurrency(16), 8);
        c.record(&cfg, TIMEOUT, None, 16, 1_200);
        assert_eq!(c.concurrency(16), 4);
        for i in 0..200 {
            c.record(&cfg, OK, None, 16, 2_000 + i);
        }
        assert_eq!(c.concurrency(16), 16);
    }

    #[test]
    fn throttling_holds_the_endpoint_for_retry_after_or_a_growing_hold() {
        let cfg = config();
        let mut c = Control::new(&cfg, 4, None, 0, 0);
        let changed = c.record(&cfg, BUSY, Some(Duration::from_secs(15)), 4, 1_000);
        assert!(changed.held && changed.health);
        assert_eq!(c.blocked_until(1_000), Some(16_000));
        assert_eq!(c.health(1_000).throttled_since, Some(1_000));
        assert_eq!(c.blocked_until(16_000), None);
        // Without Retry-After: 1 s, then 2 s.
        c.record(&cfg, BUSY, None, 4, 20_000);
        assert_eq!(c.blocked_until(20_000), Some(22_000));
        c.record(&cfg, BUSY, None, 4, 22_000);
        assert_eq!(c.blocked_until(22_000), Some(26_000));
    }

    #[test]
    fn the_breaker_opens_probes_once_and_closes_on_success() {
        let cfg = config();
        let mut c = Control::new(&cfg, 4, None, 0, 0);
        for t in 0..3 {
            assert!(!c.record(&cfg, FAIL, None, 4, t).held);
        }
        // The fourth request reaches the minimum: 4 of 4 failed.
        assert!(c.record(&cfg, FAIL, None, 4, 3).held);
        assert_eq!(c.breaker(), BreakerState::Open);
        assert_eq!(c.blocked_until(5_000), Some(10_003));
        // Time up: half-open, one probe at a time.
        assert_eq!(c.blocked_until(10_003), None);
        assert_eq!(c.concurrency(4), 1);
        c.started(7);
        assert_eq!(c.concurrency(4), 0);
        // A probe given back unsent (its lease may be lost) lets another go.
        c.not_attempted(8);
        assert_eq!(c.concurrency(4), 0);
        c.not_attempted(7);
        assert_eq!(c.concurrency(4), 1);
        c.started(9);
        // A failed probe opens it for twice as long.
        c.record(&cfg, FAIL, None, 4, 10_100);
        assert_eq!(c.breaker(), BreakerState::Open);
        assert_eq!(c.health(10_100).next_probe_at, Some(30_100));
        assert_eq!(c.blocked_until(30_100), None);
        c.started(10);
        c.record(&cfg, OK, None, 4, 30_200);
        assert_eq!(c.breaker(), BreakerState::Closed);
        assert_eq!(c.concurrency(4), 4);
    }

    #[test]
    fn a_4xx_is_not_the_endpoints_fault_and_a_new_owner_continues() {
        let cfg = config();
        let mut c = Control::new(&cfg, 4, None, 0, 0);
        let not_found = SendResult { status: Some(404), ..Default::default() };
        for t in 0..10 {
            c.record(&cfg, Verdict::of(&not_found), None, 4, t);
        }
        assert_eq!(c.breaker(), BreakerState::Closed);
        for t in 10..14 {
            c.record(&cfg, FAIL, None, 4, t);
        }
        // 4 of 14 failed: under half.
        assert_eq!(c.breaker(), BreakerState::Closed);
        for t in 14..30 {
            c.record(&cfg, FAIL, None, 4, t);
        }
        assert_eq!(c.breaker(), BreakerState::Open);
        let health = c.health(30);
        let mut taken_over = Control::new(&cfg, 4, Some(&health), 0, 31);
        assert_eq!(taken_over.breaker(), BreakerState::Open);
        assert_eq!(taken_over.blocked_until(31), health.next_probe_at);
    }

    #[test]
    fn the_window_forgets_what_is_older_than_it() {
        let mut w = Window::default();
        let minute = Duration::from_secs(60);
        for t in 0..1_000 {
            w.add(minute, t * 10, t % 2 == 0);
        }
        assert_eq!(w.counts(), (500, 1000));
        assert!(w.slices.len() <= 2);
        // 61 s later only the new request counts.
        w.add(minute, 71_000, false);
        assert_eq!(w.counts(), (0, 1));
    }

    #[test]
    fn failing_for_too_long_asks_for_a_disable() {
        let mut cfg = config();
        cfg.disable_after = Duration::from_secs(100);
        cfg.breaker.min_requests = 1_000;
        let mut c = Control::new(&cfg, 4, None, 0, 0);
        assert!(c.record(&cfg, FAIL, None, 4, 0).health);
        assert!(!c.record(&cfg, FAIL, None, 4, 50_000).disable);
        // A success in between starts the count again.
        assert!(c.record(&cfg, OK, None, 4, 60_000).health);
        assert!(!c.record(&cfg, FAIL, None, 4, 100_000).disable);
        assert!(c.record(&cfg, FAIL, None, 4, 200_000).disable);
    }
}
