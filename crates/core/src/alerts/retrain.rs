//! Retrain triggers: the retrain rules that fired in one batch of records, grouped per
//! (model, window), and the per-model cooldown.
//!
//! At most one trigger per model per batch and per cooldown (event time, window ends). It
//! carries the retrain rules that *fired* in that window (not those that were already
//! firing). The cooldown that starts is the one of the first rule in the trigger's evidence
//! (records in batch order, rules in configuration order).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::events::{trigger_id, Evidence, RetrainTrigger, RuleEvent, RETRAIN_SCHEMA};
use crate::output::WindowBounds;

/// When the last retrain trigger of a model was emitted, in event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrainCooldown {
    /// Window end (epoch ms) of the last trigger.
    pub last_trigger_end_ms: i64,
    /// No new trigger for a window ending before this (epoch ms).
    pub quiet_until_ms: i64,
}

/// A retrain rule that fired on one record.
pub(crate) struct FiredRetrain {
    pub model: String,
    pub window: WindowBounds,
    pub cooldown_ms: i64,
    pub evidence: Evidence,
}

/// Groups the fired retrain rules by (model, window) and applies the per-model cooldown,
/// updating `cooldowns`.
pub(crate) fn retrain_triggers(
    cooldowns: &mut BTreeMap<String, RetrainCooldown>,
    fired: Vec<FiredRetrain>,
) -> Vec<RuleEvent> {
    let mut groups: Vec<Vec<FiredRetrain>> = Vec::new();
    for one in fired {
        match groups
            .iter_mut()
            .find(|group| group[0].model == one.model && group[0].window == one.window)
        {
            Some(group) => group.push(one),
            None => groups.push(vec![one]),
        }
    }
    let mut triggers = Vec::new();
    for group in groups {
        let first = &group[0];
        let end = first.window.end;
        let allowed = match cooldowns.get(&first.model) {
            None => true,
            Some(cooldown) => end >= cooldown.quiet_until_ms && end > cooldown.last_trigger_end_ms,
        };
        if !allowed {
            continue;
        }
        cooldowns.insert(
            first.model.clone(),
            RetrainCooldown {
                last_trigger_end_ms: end,
                quiet_until_ms: end.saturating_add(first.cooldown_ms),
            },
        );
        let model_version = first.evidence.model_version.clone();
        let mut rules: Vec<String> = Vec::new();
        for one in &group {
            if !rules.contains(&one.evidence.rule) {
                rules.push(one.evidence.rule.clone());
            }
        }
        triggers.push(RuleEvent::Retrain(RetrainTrigger {
            schema: RETRAIN_SCHEMA.to_string(),
            trigger_id: trigger_id(
                &first.model,
                model_version.as_deref(),
                &first.window.start_text(),
            ),
            model: first.model.clone(),
            model_version,
            rules,
            window: first.window,
            created_at: first.window.end_text(),
            evidence: group.into_iter().map(|one| one.evidence).collect(),
        }));
    }
    triggers
}
