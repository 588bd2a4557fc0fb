/* bootstrap: luamr as a Lambda custom runtime — the loop `luamr` runs when started as
 * `bootstrap` (or with AWS_LAMBDA_RUNTIME_API set and no command). Each invocation's
 * event names one task of a run; the task runs in a child process (runner_run_task) so a
 * crash or a task that would outlive Lambda's deadline is stopped and reported as an error
 * instead of killing the runtime. Scratch files go to a fresh folder under /tmp (TMPDIR
 * for the task), removed afterwards. Logs are JSON lines on stdout with per-task metrics
 * in CloudWatch Embedded Metric Format.
 * Depends on lambda/runtime, lambda/event, lambda/log, engine/runner and connectors/s3.
 *
 * LUAMR_LAMBDA_DEADLINE_MARGIN_MS (default 1000): how long before Lambda's deadline a
 * task is stopped. */
#ifndef LUAMR_LAMBDA_BOOTSTRAP_H
#define LUAMR_LAMBDA_BOOTSTRAP_H

/* Runs until the Runtime API goes away; returns the process exit status. */
int lambda_bootstrap_main(void);

/* 1 when main() should run the bootstrap: argv0's basename is "bootstrap", or
 * AWS_LAMBDA_RUNTIME_API is set and no command was given. */
int lambda_bootstrap_wanted(const char *argv0, int argc);

#endif
