//! The store behaviour suite: what every backend must do, written once against
//! the `Store` interface and run on each backend. `sqlite::<case>` always runs;
//! `postgres::<case>` runs when `HOOKD_TEST_DATABASE_URL` names a PostgreSQL
//! database (each test in a schema of its own, so they run in parallel), and
//! says it is skipped otherwise.

mod control;
mod fixture;
mod inbound;
mod lifecycle;
mod mcp_tokens;
mod messages;
mod ordering;
mod poller;
mod queue;
mod resources;
mod shaping;
mod stats;

use fixture::Fixture;

/// One `#[tokio::test]` per case and backend. `both` cases run on every backend;
/// `postgres_only` ones test what only a shared database has (several nodes
/// talking through it).
macro_rules! suite {
    (both: [$($module:ident::$case:ident),* $(,)?], postgres_only: [$($pg_module:ident::$pg_case:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    crate::$module::$case(crate::Fixture::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some((f, schema)) = crate::Fixture::postgres().await {
                        crate::$module::$case(f).await;
                        schema.drop_now().await;
                    }
                }
            )*
            $(
                #[tokio::test]
                async fn $pg_case() {
                    if let Some((f, schema)) = crate::Fixture::postgres().await {
                        crate::$pg_module::$pg_case(f).await;
                        schema.drop_now().await;
                    }
                }
            )*
        }
    };
}

suite! {
    both: [
        queue::a_message_fans_out_to_matching_endpoints_in_one_commit,
        queue::leased_deliveries_are_claimed_only_after_the_lease_expires,
        queue::each_endpoint_queue_has_one_owner_at_a_time,
        queue::outcomes_finish_or_reschedule_deliveries,
        queue::recording_the_same_outcomes_twice_is_harmless,
        queue::outcomes_of_deleted_deliveries_are_dropped,
        queue::renewed_leases_keep_other_nodes_away,
        queue::claims_are_exclusive_under_concurrency,
        queue::an_outcome_under_an_old_lease_token_is_ignored,
        queue::a_released_delivery_is_due_again_at_once,
        queue::workers_wake_when_unleased_work_is_committed,
        control::endpoint_control_and_health_round_trip,
        control::a_disable_by_the_receiver_pauses_the_queue,
        control::event_types_keep_their_own_retry_schedule,
        control::bulk_replay_resends_what_its_filter_picks,
        lifecycle::resend_makes_a_delivery_due_again,
        lifecycle::a_resend_during_an_attempt_in_flight_follows_it,
        lifecycle::disabling_pauses_and_enabling_resumes,
        lifecycle::a_pause_recorded_after_an_enable_is_due_now,
        lifecycle::a_pause_racing_an_enable_never_strands_a_delivery,
        lifecycle::expunging_cancels_what_waits,
        lifecycle::endpoint_changes_do_not_overwrite_each_other,
        lifecycle::recover_resends_every_failure_in_the_range,
        lifecycle::replay_creates_what_the_endpoint_never_got,
        lifecycle::a_task_resumes_from_its_cursor_after_its_node_dies,
        lifecycle::retention_expunges_expired_payloads_in_batches,
        messages::a_repeated_event_id_conflicts_and_names_the_first_message,
        inbound::sources_are_found_by_their_token_and_a_rotated_one_for_its_grace,
        inbound::concurrent_repeats_of_one_event_make_one_message,
        inbound::an_object_moves_only_forward_under_concurrent_reports,
        inbound::a_due_source_is_run_by_one_node_at_a_time,
        resources::a_one_time_token_is_taken_once,
        messages::a_failing_write_does_not_take_its_group_commit_down,
        messages::an_idempotency_key_is_committed_with_what_it_created,
        messages::concurrent_requests_with_one_idempotency_key_create_once,
        messages::concurrent_enqueues_fan_out_as_one_at_a_time,
        messages::messages_list_by_filter,
        messages::messages_are_found_by_event_id_and_expunged,
        messages::attempts_list_by_filter,
        messages::deliveries_list_by_message_and_by_endpoint,
        messages::endpoint_stats_count_deliveries_by_state,
        resources::lists_page_in_id_order_both_ways,
        resources::applications_keep_uids_unique,
        resources::deleting_an_application_removes_everything_under_it,
        resources::endpoints_round_trip_and_delete_with_their_deliveries,
        resources::event_types_list_in_byte_order_and_hide_archived,
        resources::tokens_and_the_default_organisation,
        mcp_tokens::mcp_tokens_belong_to_an_application_or_the_dashboard,
        resources::organisations_are_created_changed_and_deleted_whole,
        poller::poller_sinks_read_what_is_logged_after_them_in_order,
        poller::poller_consumers_lease_commit_and_see_again_what_they_did_not_commit,
        poller::poller_tokens_rotate_and_go_with_their_sink,
        ordering::an_ordered_endpoint_sends_one_delivery_per_key_at_a_time,
        ordering::ordering_holds_through_cancel_resend_and_changes,
        ordering::disabling_and_enabling_keep_an_ordered_queue_parked,
        ordering::a_recovered_failure_goes_back_to_its_place,
        shaping::filters_decide_fan_out,
        shaping::templates_keep_numbered_versions,
        shaping::an_export_task_keeps_what_it_made,
        shaping::connectors_round_trip_within_their_organisation,
        stats::rollups_match_the_attempt_log_and_fold_exactly,
        stats::an_sla_changes_state_once_and_keeps_its_history,
        stats::traffic_by_application_and_alerts_raised_once,
    ],
    postgres_only: [
        queue::other_nodes_are_woken_by_a_notification,
        resources::several_nodes_start_at_once_on_a_new_schema,
        poller::a_poller_never_passes_a_message_committed_late,
        ordering::concurrent_enqueues_keep_one_delivery_per_key_in_flight,
    ],
}
