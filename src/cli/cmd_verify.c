/* sgdstab verify FILE --lr η --batch B: the theory's quantities, bounds and
 * conditions (README, The theory checks; theory.h) beside the exact answer. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/plan.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"
#include "sgdstab/theory.h"

static const char VERIFY_HELP[] =
    "Usage: sgdstab verify FILE --lr ETA --batch B [--sampling S] [--json]\n"
    "                      [--loss L] [--rank-tol RTOL] [--max-memory SIZE]\n"
    "                      [--params P]\n"
    "                      [--optimizer O] [--momentum BETA] [--nesterov] ...\n"
    "\n"
    "Compute the exact spectral radius rho and critical learning rate eta*(B)\n"
    "(as 'sgdstab analyze' does) and, beside them, the quantities of the\n"
    "theory of SGD stability at an interpolating minimum (H = G), each with\n"
    "the bound it is compared to, whether it holds, and its tightness:\n"
    "\n"
    "  theorems (must hold on every input; a failure is a bug in sgdstab):\n"
    "    mean_stability           eta* <= 2/lambda_max(H)\n"
    "    mulayoff_michaeli_top    eta* <= 2 l / [a l^2 + (b/n) sum (v'A_i v)^2],\n"
    "                             l = lambda_max(H), v its eigenvector\n"
    "    mulayoff_michaeli_trace  eta* <= 2 tr H / [a |H|_F^2\n"
    "                                             + (b/n) sum |A_i|_F^2]\n"
    "                             (Mulayoff & Michaeli 2024; with a = 1 - b\n"
    "                             for sampling without/with, their forms)\n"
    "    wu_wang_su_lr            eta* <= 1/(|H|_F sqrt(b mu_min))\n"
    "    wu_wang_su_frobenius     if stable: |H|_F <= 1/(eta sqrt(b mu_min))\n"
    "    wu_wang_su_escape        rho >= eta^2 b mu_min |H|_F^2, i.e. the\n"
    "                             escape rate is at least its logarithm\n"
    "                             (Wu, Wang & Su 2022)\n"
    "    alignment_top            mu(S*) >= mu_min for the top eigenmatrix S*\n"
    "                             of T, at its semidefinite part (judged\n"
    "                             when S* is semidefinite and not confined\n"
    "                             to directions of curvature below\n"
    "                             1e-10 lambda_max, where rounding decides mu)\n"
    "  conditions (Wu, Ma & E 2018; sufficient-condition heuristics, reported\n"
    "  without judgement):\n"
    "    wu_ma_e_sharpness        lambda_max(H) <= 2/eta\n"
    "    wu_ma_e_nonuniformity    s <= 1/(eta sqrt(b)),\n"
    "                             s^2 = lambda_max((1/n) sum A_i^2 - G^2)\n"
    "\n"
    "Here A_i = J_i'J_i, G = (1/n) sum A_i, E[G_xi S G_xi] = a GSG + b Sigma(S)\n"
    "for the sampling rule, and the alignment of a second moment S is\n"
    "mu(S) = tr(G(Sigma(S) - GSG)) / (tr(GS) |G|_F^2), mu_min its infimum over\n"
    "S >= 0. Tightness is value/bound for upper bounds and bound/value for\n"
    "lower ones: at most 1 when the inequality holds, 1 when it is tight.\n"
    "\n"
    "These are theorems of plain SGD.  With momentum or weight decay (the\n"
    "optimizer options) the checks are that optimizer's own theorems instead:\n"
    "    noise_free_limit         eta* <= the noise-free limit (eta* at full\n"
    "                             batch; batch noise only lowers it)\n"
    "    radius_at_critical(_low) |rho(eta*) - 1| within the accuracy reached\n"
    "    verdict_radius           stable => rho <= 1, unstable => rho >= 1\n"
    "and the theory quantities are those of H (preconditioned with a\n"
    "preconditioner, without the decay's shift).\n"
    "\n"
    "Options:\n"
    "  --lr ETA          learning rate (required)\n"
    "  --batch B         batch size, 1 <= B <= n (required)\n"
    CLI_HELP_SAMPLING
    CLI_HELP_OPTIMIZER_OPTIONS
    "  --loss L          loss convention: half-mean (default), mse (PyTorch\n"
    "                    MSELoss, scale 2/k) or a positive scale c; without\n"
    "                    --loss, the \"loss\" of FILE's meta.json if it has one\n"
    "  --rank-tol RTOL   relative rank tolerance of J (see 'sgdstab info')\n"
    "  --max-memory SIZE the memory loading and factorizing FILE may take\n"
    "                    (see 'sgdstab info --help')\n"
    "  --json            one JSON object on stdout, keys: file n k p input rank lr\n"
    "                    batch sampling optimizer (as in 'sgdstab analyze\n"
    "                    --help') loss_scale a b stable verdict (as\n"
    "                    in 'sgdstab analyze --help') spectral_radius\n"
    "                    escape_rate_per_step escape_rate_per_epoch\n"
    "                    lr_critical lr_critical_mean sharpness\n"
    "                    hessian_frobenius hessian_trace nonuniformity\n"
    "                    alignment_min alignment_top frobenius_bound\n"
    "                    growth_bound escape_rate_lower_bound\n"
    "                    theorems_failed operator_applications (of the\n"
    "                    noise operator, in all) residual_rms max_residual\n"
    "                    target_rms\n"
    "                    interpolating (from FILE's meta.json, see 'sgdstab\n"
    "                    info --help'; null when it does not tell) checks;\n"
    "                    checks is an array of {name, description, value,\n"
    "                    bound, relation (\"<=\" or \">=\"), theorem, holds,\n"
    "                    ratio}; an infinite bound is null\n"
    "  -h, --help        show this help\n"
    "\n"
    "FILE holds J only (no separate H): the theorems assume an interpolating\n"
    "minimum, where the Hessian is G.\n"
    "\n"
    CLI_HELP_EXIT_STATUSES CLI_HELP_EXIT_THEOREM_FAILS;

static void print_text(const cli_args *a, const sgdstab_problem *prob,
                       const sgdstab_reduced *red,
                       const sgdstab_verification *v)
{
    const sgdstab_analysis *an = &v->analysis;
    const sgdstab_config *cfg = &an->config;
    const sgdstab_theory *th = &v->theory;
    printf("%s: n = %zu samples, k = %zu, p = %s, reduced dimension r = %zu\n",
           prob->source, prob->n, prob->k, cli_params(prob->p).s, red->r);
    printf("%s with learning rate %.6g, batch size %zu (sampling %s: a = "
           "%.6g, b = %.6g), loss %s\n", sgdstab_optimizer_title(
               &cfg->optimizer), cfg->lr, cfg->batch,
           sgdstab_sampling_name(cfg->sampling), an->a, an->b, a->loss);
    cli_print_optimizer(a, cfg);
    putchar('\n');
    cli_print_residual("Minimum: ", prob);
    printf("Exact:   %s; rho = %.12g (escape rate %.6g per step), eta*(%zu) = "
           "%.12g\n", an->verdict == SGDSTAB_VERDICT_THRESHOLD
                           ? "AT THE THRESHOLD (within accuracy)"
                       : an->stable ? "STABLE" : "UNSTABLE", an->radius.rho,
           an->escape_rate_per_step, cfg->batch, an->critical.lr_critical);
    printf("Theory:  lambda_max(H) = %.6g, |H|_F = %.6g, tr H = %.6g, "
           "non-uniformity s = %.6g\n", th->sharpness, th->hessian_frobenius,
           th->hessian_trace, th->nonuniformity);
    if (!isnan(v->alignment_top)) {  /* plain SGD's theory */
        printf("         alignment mu_min = %.6g, mu at the top eigenmatrix "
               "of T = %.6g\n", th->alignment_min, v->alignment_top);
        printf("         stable |H|_F is at most %.6g; escape rate at least "
               "%.6g per step\n", v->frobenius_bound, log(v->growth_bound));
    }
    putchar('\n');
    printf("  %-24s %-8s %16s %4s %16s %9s  %s\n", "check", "kind", "value", "",
           "bound", "tightness", "holds");
    for (size_t i = 0; i < v->nchecks; i++) {
        const sgdstab_check *c = &v->checks[i];
        printf("  %-24s %-8s %16.10g %4s %16.10g %9.4f  %s\n", c->name,
               c->theorem ? "theorem" : "report", c->value,
               c->upper ? "<=" : ">=", c->bound, c->ratio,
               c->holds ? "yes" : c->theorem ? "NO  <-- THEOREM FAILS" : "no");
    }
}

static int print_json(const sgdstab_problem *prob, const sgdstab_reduced *red,
                      const sgdstab_verification *v)
{
    const sgdstab_analysis *an = &v->analysis;
    cJSON *o = cli_json_problem(prob);
    cli_json_size(o, "rank", red->rank_J);
    cli_json_point(o, &an->config);
    cli_json_optimizer(o, &an->config);
    cli_json_number(o, "loss_scale", an->config.loss_scale);
    cli_json_number(o, "a", an->a);
    cli_json_number(o, "b", an->b);
    cJSON_AddBoolToObject(o, "stable", an->stable);
    cJSON_AddStringToObject(o, "verdict", sgdstab_verdict_name(an->verdict));
    cli_json_number(o, "spectral_radius", an->radius.rho);
    cli_json_number(o, "escape_rate_per_step", an->escape_rate_per_step);
    cli_json_number(o, "escape_rate_per_epoch", an->escape_rate_per_epoch);
    cli_json_number(o, "lr_critical", an->critical.lr_critical);
    cli_json_number(o, "lr_critical_mean", an->lr_critical_mean);
    cli_json_theory(o, &v->theory);
    cli_json_number(o, "alignment_top", v->alignment_top);
    cli_json_number(o, "frobenius_bound", v->frobenius_bound);
    cli_json_number(o, "growth_bound", v->growth_bound);
    cli_json_number(o, "escape_rate_lower_bound", log(v->growth_bound));
    cli_json_size(o, "theorems_failed", v->theorems_failed);
    cli_json_size(o, "operator_applications", an->matvecs);
    cli_json_provenance(o, prob);
    cJSON *checks = cJSON_AddArrayToObject(o, "checks");
    for (size_t i = 0; i < v->nchecks; i++) {
        const sgdstab_check *c = &v->checks[i];
        cJSON *e = cli_json_append_object(checks);
        cJSON_AddStringToObject(e, "name", c->name);
        cJSON_AddStringToObject(e, "description", c->description);
        cli_json_number(e, "value", c->value);
        cli_json_number(e, "bound", c->bound);
        cJSON_AddStringToObject(e, "relation", c->upper ? "<=" : ">=");
        cJSON_AddBoolToObject(e, "theorem", c->theorem);
        cJSON_AddBoolToObject(e, "holds", c->holds);
        cli_json_number(e, "ratio", c->ratio);
    }
    return cli_json_print(o);
}

/* Loud report of every failed theorem, on stderr. */
static void report_failures(const sgdstab_problem *prob,
                            const sgdstab_verification *v)
{
    for (size_t i = 0; i < v->nchecks; i++) {
        const sgdstab_check *c = &v->checks[i];
        if (c->theorem && !c->holds)
            cli_data_error("verify", prob->source,
                           "THEOREM FAILS: %s (%s: value "
                           "%.17g, bound %.17g) -- this is a bug in sgdstab, "
                           "please report it with the input",
                           c->name, c->description, c->value, c->bound);
    }
}

static int verify_at(const cli_args *a, const cli_session *ses)
{
    sgdstab_theory th;
    sgdstab_verification v;
    sgdstab_error err;
    if (sgdstab_plan_theory(ses->prob, ses->red, &ses->cfg, &th, &err) ||
        sgdstab_verify(ses->stab, &th, &ses->cfg, &v, &err))
        return cli_data_error(a->cmd, ses->prob->source, "%s", err.msg);
    int status = EXIT_OK;
    if (a->json)
        status = print_json(ses->prob, ses->red, &v);
    else
        print_text(a, ses->prob, ses->red, &v);
    report_failures(ses->prob, &v);
    return !status && v.theorems_failed ? EXIT_THEOREM_FAILS : status;
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPT_LR, CLI_OPT_BATCH, CLI_OPT_SAMPLING, CLI_OPT_LOSS,
        CLI_OPT_RANK_TOL, CLI_OPTS_PROBLEM_SIZE, CLI_OPT_JSON, CLI_OPTS_OPTIMIZER,
        CLI_OPT_HELP, CLI_OPT_END};
    return cli_main_at("verify", argc, argv, opts, VERIFY_HELP, verify_at);
}
