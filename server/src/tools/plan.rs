//! `update_plan`: the model keeps a short checklist of its work. The call changes nothing;
//! it is checked here (at most one step in progress, bounded size) and the agent shows the
//! plan to the user (ACP `plan`, LSP `plan`, the CLI's checklist).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Args, ToolError};
use crate::tools::args::kind;

/// The most steps a plan may have.
pub const MAX_STEPS: usize = 50;

/// The longest a step may be, in characters.
pub const MAX_STEP_CHARS: usize = 500;

/// The longest an explanation may be, in characters.
pub const MAX_EXPLANATION_CHARS: usize = 2000;

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Being worked on (one step at most).
    InProgress,
    /// Done.
    Completed,
}

impl StepStatus {
    /// The name on the wire (`pending`, `in_progress`, `completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::InProgress => "in_progress",
            StepStatus::Completed => "completed",
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// What the step is, in a few words.
    pub step: String,
    /// Where it stands.
    pub status: StepStatus,
}

/// A whole plan, as the model last gave it: each call replaces the one before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<PlanStep>,
    /// Why the plan changed, when the model says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl Plan {
    /// The plan in a call's arguments, checked.
    pub(super) fn parse(args: &Args<'_>) -> Result<Plan, ToolError> {
        args.only(&["plan", "explanation"])?;
        let explanation = args.opt_string("explanation")?.map(str::to_string);
        if let Some(e) = &explanation
            && e.chars().count() > MAX_EXPLANATION_CHARS
        {
            return Err(ToolError::new(format!(
                "`explanation` is {} characters long; keep it under {MAX_EXPLANATION_CHARS}",
                e.chars().count()
            )));
        }
        let items = match args.raw("plan") {
            None => {
                return Err(ToolError::new(
                    "`update_plan` needs `plan` (an array of {step, status})",
                ));
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(ToolError::new(format!(
                    "`plan` must be an array of {{step, status}}, got {}",
                    kind(other)
                )));
            }
        };
        if items.len() > MAX_STEPS {
            return Err(ToolError::new(format!(
                "`plan` has {} steps; keep it to {MAX_STEPS} at most",
                items.len()
            )));
        }
        let mut steps = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let n = i + 1;
            let step: PlanStep = serde_json::from_value(item.clone()).map_err(|e| {
                ToolError::new(format!(
                    "step {n} of `plan` must be {{\"step\": text, \"status\": \"pending\" | \"in_progress\" | \"completed\"}}: {e}"
                ))
            })?;
            let chars = step.step.trim().chars().count();
            if chars == 0 {
                return Err(ToolError::new(format!("step {n} of `plan` is empty")));
            }
            if chars > MAX_STEP_CHARS {
                return Err(ToolError::new(format!(
                    "step {n} of `plan` is {chars} characters long; keep each step under {MAX_STEP_CHARS}"
                )));
            }
            steps.push(step);
        }
        let running: Vec<String> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.status == StepStatus::InProgress)
            .map(|(i, _)| (i + 1).to_string())
            .collect();
        if running.len() > 1 {
            return Err(ToolError::new(format!(
                "steps {} of `plan` are all in_progress; at most one step may be in_progress at a time",
                running.join(", ")
            )));
        }
        Ok(Plan { steps, explanation })
    }

    /// The plan in the arguments of a stored `update_plan` call (a session shown again).
    pub fn from_arguments(arguments: &Value) -> Result<Plan, ToolError> {
        Plan::parse(&Args::new("update_plan", arguments)?)
    }

    /// What the model is told: the plan is kept, and shown to the user.
    pub fn render(&self) -> String {
        "Plan updated".to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<Plan, String> {
        let args = Args::new("update_plan", &value).map_err(|e| e.message)?;
        Plan::parse(&args).map_err(|e| e.message)
    }

    #[test]
    fn a_plan_is_read_with_its_explanation() {
        let plan = parse(json!({
            "plan": [
                {"step": "Read the parser", "status": "completed"},
                {"step": "Fix the bug", "status": "in_progress"},
                {"step": "Add a test", "status": "pending"},
            ],
            "explanation": "found the cause",
        }))
        .unwrap();
        assert_eq!(plan.steps.len(), 3);
        assert_eq!(plan.steps[1].status, StepStatus::InProgress);
        assert_eq!(plan.explanation.as_deref(), Some("found the cause"));
        assert_eq!(plan.render(), "Plan updated");
    }

    #[test]
    fn bad_plans_are_refused_precisely() {
        let cases = [
            (
                json!({}),
                "`update_plan` needs `plan` (an array of {step, status})",
            ),
            (
                json!({"plan": "do it"}),
                "`plan` must be an array of {step, status}, got a string",
            ),
            (
                json!({"plan": [{"step": "a", "status": "in_progress"}, {"step": "b", "status": "in_progress"}]}),
                "steps 1, 2 of `plan` are all in_progress; at most one step may be in_progress at a time",
            ),
            (
                json!({"plan": [{"step": "  ", "status": "pending"}]}),
                "step 1 of `plan` is empty",
            ),
            (
                json!({"plan": [], "why": "x"}),
                "`update_plan` has no argument `why`; it takes `plan`, `explanation`",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args).unwrap_err(), want);
        }
        let bad_status = parse(json!({"plan": [{"step": "a", "status": "done"}]})).unwrap_err();
        assert!(
            bad_status.starts_with("step 1 of `plan` must be {\"step\": text, \"status\": \"pending\" | \"in_progress\" | \"completed\"}: unknown variant `done`"),
            "{bad_status}"
        );
        let long = "x".repeat(MAX_STEP_CHARS + 1);
        assert_eq!(
            parse(json!({"plan": [{"step": long, "status": "pending"}]})).unwrap_err(),
            format!(
                "step 1 of `plan` is {} characters long; keep each step under {MAX_STEP_CHARS}",
                MAX_STEP_CHARS + 1
            )
        );
        let many: Vec<Value> = (0..=MAX_STEPS)
            .map(|i| json!({"step": format!("s{i}"), "status": "pending"}))
            .collect();
        assert_eq!(
            parse(json!({ "plan": many })).unwrap_err(),
            format!(
                "`plan` has {} steps; keep it to {MAX_STEPS} at most",
                MAX_STEPS + 1
            )
        );
    }
}
