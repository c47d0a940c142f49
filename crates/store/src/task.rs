//! Background tasks (Svix `BackgroundTaskOut`): work too large for one request,
//! such as recovering an endpoint's failures over a time range. A task is a row
//! that any node may lease, like a delivery; it advances in small batches, each
//! one transaction that also moves the task's cursor, so a crash costs at most
//! the batch in progress and another node resumes where it stopped.

/// What a task does (Svix `BackgroundTaskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Sends again every message whose delivery to the endpoint failed in a range.
    EndpointRecover,
    /// Creates the deliveries an endpoint never got for messages in a range.
    EndpointReplay,
    /// Sends again the endpoint's deliveries of messages in a range that match
    /// a [`ReplayFilter`] (e.g. every dead letter of one event type).
    EndpointBulkReplay,
    /// An OpenAPI document of the event types (Svix names its export so):
    /// made at once, stored finished with the document as its result.
    SdkGenerate,
}

impl TaskKind {
    pub const ALL: [TaskKind; 4] =
        [TaskKind::EndpointRecover, TaskKind::EndpointReplay, TaskKind::EndpointBulkReplay, TaskKind::SdkGenerate];

    pub const fn as_str(self) -> &'static str {
        match self {
            TaskKind::EndpointRecover => "endpoint.recover",
            TaskKind::EndpointReplay => "endpoint.replay",
            TaskKind::EndpointBulkReplay => "endpoint.bulk-replay",
            TaskKind::SdkGenerate => "sdk.generate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Svix `BackgroundTaskStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Running,
    Finished,
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 3] = [TaskStatus::Running, TaskStatus::Finished, TaskStatus::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Finished => "finished",
            TaskStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct BackgroundTask {
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub endpoint_id: String,
    pub kind: TaskKind,
    pub status: TaskStatus,
    /// The range of message (replay) or attempt (recover) times, [since, until).
    pub since: i64,
    pub until: i64,
    /// The id of the last message (replay) or attempt (recover) handled.
    pub cursor: Option<String>,
    /// Deliveries made due so far (Svix's `messagesSent`).
    pub messages_sent: u64,
    /// Why a failed task failed.
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// A bulk replay's filters.
    pub filter: Option<ReplayFilter>,
    /// What a task made (JSON text), for tasks that make something.
    pub result: Option<String>,
}

/// Which deliveries a bulk replay sends again (Svix `BulkReplayIn`, less the range).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The delivery's status as the API shows it (`MessageStatus` as an integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// The class of its last attempt's response code (0 for no response, 100,
    /// 200 … 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code_class: Option<i64>,
}

/// A delivery a bulk replay considers, as both backends read it: its row
/// `(id, state, msg_id, event_type, channels JSON, tags JSON, payload expunged,
/// last attempt's status code, never attempted and still scheduled)`.
pub type ReplayCandidate = (i64, String, String, String, Option<String>, Option<String>, bool, Option<i32>, bool);

impl ReplayFilter {
    /// The SQL condition on the delivery `d` for the `status` filter, if any.
    pub fn status_sql(&self) -> String {
        match self.status.and_then(hookd_core::MessageStatus::from_i64) {
            Some(s) => format!(" AND {}", crate::states::status_condition(s)),
            None => String::new(),
        }
    }

    /// Whether the candidate is sent again. Never: one whose payload is gone,
    /// one never attempted and still waiting for its first (maybe `deliverAt`)
    /// time (replaying it would send it early), a canceled one unless the
    /// filter asks for canceled ones (status 4).
    pub fn picks(&self, c: &ReplayCandidate) -> bool {
        let (_, state, _, event_type, channels, tags, expunged, last_code, first_pending) = c;
        let channels: Option<Vec<String>> = channels.as_deref().and_then(|s| serde_json::from_str(s).ok());
        let tags: Option<Vec<String>> = tags.as_deref().and_then(|s| serde_json::from_str(s).ok());
        !*expunged
            && !*first_pending
            && (state != "canceled" || self.status == Some(4))
            && self.matches(event_type, channels.as_deref(), tags.as_deref(), *last_code)
    }

    /// Whether a message with these attributes, whose last attempt to the
    /// endpoint got `last_code` (`None`: never attempted), is replayed.
    pub fn matches(
        &self,
        event_type: &str,
        channels: Option<&[String]>,
        tags: Option<&[String]>,
        last_code: Option<i32>,
    ) -> bool {
        if self.event_types.as_ref().is_some_and(|t| !t.iter().any(|t| t == event_type)) {
            return false;
        }
        if self.channel.as_ref().is_some_and(|c| !channels.unwrap_or_default().contains(c)) {
            return false;
        }
        if self.tag.as_ref().is_some_and(|t| !tags.unwrap_or_default().contains(t)) {
            return false;
        }
        match self.status_code_class {
            None => true,
            Some(class) => last_code.is_some_and(|code| i64::from(code) / 100 * 100 == class),
        }
    }
}

/// Filters of the task list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this application's tasks (an app-scoped caller sees no others).
    pub app_id: Option<String>,
    pub status: Option<TaskStatus>,
    pub kind: Option<TaskKind>,
}

/// A task leased to a node, with the fencing token its steps must present.
#[derive(Debug, Clone)]
pub struct TaskLease {
    pub task: BackgroundTask,
    pub token: i64,
}

/// What one step of a task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskStep {
    /// Deliveries made due by this step.
    pub sent: u64,
    /// The task has nothing left: it is finished.
    pub done: bool,
}

/// How long what is kept, for the retention sweep (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Messages (with their deliveries and attempts) are deleted this long
    /// after they were created. Their payloads went earlier, at their own expiry.
    pub messages_ms: i64,
    /// Finished background tasks are deleted this long after they finished.
    pub tasks_ms: i64,
}

/// What one retention sweep batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Messages whose payload was expunged.
    pub messages: u64,
    /// Attempts whose response body was cleared.
    pub attempts: u64,
    /// Deliveries canceled because their content is gone.
    pub canceled: u64,
    /// Messages deleted, with their deliveries and attempts.
    pub deleted: u64,
    /// Finished background tasks and expired idempotency keys removed.
    pub housekeeping: u64,
}

impl PruneReport {
    pub fn is_empty(&self) -> bool {
        *self == PruneReport::default()
    }

    pub fn add(&mut self, other: PruneReport) {
        self.messages += other.messages;
        self.attempts += other.attempts;
        self.canceled += other.canceled;
        self.deleted += other.deleted;
        self.housekeeping += other.housekeeping;
    }
}
