/* What most subcommands work on: the problem FILE holds, loaded and
 * factorized, with the configuration the options give and the stability
 * workspace; and the exact quantities several subcommands print alike. */
#ifndef SGDSTAB_CLI_SESSION_H
#define SGDSTAB_CLI_SESSION_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "options.h"
#include "sgdstab/config.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/second_moment.h"
#include "sgdstab/param_space.h"
#include "sgdstab/stability.h"
#include "sgdstab/stationary.h"

/* Load FILE (and --hessian) and factorize; prints the error and returns
 * EXIT_DATA on failure.  Without --loss, the "loss" of FILE's metadata (if
 * any) sets a->loss and a->loss_name.  At a minimum the metadata calls not
 * interpolating, a note says so on stderr (cli_note_interpolation). */
int cli_load(cli_args *a, sgdstab_problem **prob, sgdstab_reduced **red);

/* The loss convention of prob's file, for a command given none: returns
 * its name for sgdstab_loss_scale (the metadata's "loss", else half-mean)
 * and sets *shown to how text outputs name it: "L from the file's
 * metadata" (written into text, size bytes) when the metadata says it. */
const char *cli_file_loss(const sgdstab_problem *prob, char *text,
                          size_t size, const char **shown);

/* The configuration the options give (--lr if given, --sampling, the
 * optimizer, the loss scale of the convention for k outputs; batch 0), or
 * EXIT_DATA after an error line. */
int cli_config(const cli_args *a, size_t k, sgdstab_config *cfg);

/* sgdstab_config_check for what the subcommand uses (config.h): EXIT_OK,
 * a usage error (EXIT_USAGE), or for a value out of range for this
 * problem's curvature a data error naming FILE (EXIT_DATA). */
int cli_config_check(const cli_args *a, const sgdstab_reduced *red,
                     const sgdstab_config *cfg, unsigned uses);

/* The stability workspace for a reduced problem, fitted to the memory
 * (--max-memory) for `families` eigenproblem families (stability.h: 1 for
 * η* alone, 2 with ρ⊥); a note when its bases are smaller than the
 * default. */
int cli_stability(const cli_args *a, const sgdstab_reduced *red,
                  int families, sgdstab_stability **s);

/* What most subcommands work on: the loaded problem, its reduced
 * coordinates, the configuration of the options and the stability
 * workspace. */
typedef struct {
    sgdstab_problem *prob;
    sgdstab_reduced *red;
    sgdstab_config cfg;
    sgdstab_stability *stab;
    double *second_moment;  /* --second-moment's values, or NULL */
} cli_session;

/* cli_load, cli_config with the batch size given (0: none yet),
 * cli_config_check for `uses`, then cli_stability; on failure the error is
 * printed, everything released and the status returned. */
int cli_session_open(cli_args *a, size_t batch, unsigned uses,
                     cli_session *ses);
void cli_session_close(cli_session *ses);

/* FILE, --lr and one --batch required (usage errors), then the session at
 * that configuration for the exact per-step map (cli_session_open). */
int cli_session_at(cli_args *a, cli_session *ses);

/* The work of a subcommand at one point, on an open session: its exit
 * status. */
typedef int (*cli_point_job)(const cli_args *a, const cli_session *ses);

/* The whole of a subcommand cmd at one point that takes only common options
 * (cli_parse_common): parse, open the session (cli_session_at), run job,
 * close.  Returns the exit status (EXIT_OK after --help). */
int cli_main_at(const char *cmd, int argc, char **argv,
                const struct option *longopts, const char *help,
                cli_point_job job);

/* Negative curvature of H taken as flat (reduce.h): a text line after
 * label (nothing when there is none) and the JSON keys
 * negative_curvature_tolerance, flat_negative_count, flat_negative_min (in
 * the loss convention c), flat_moved_count (those on directions J moves,
 * analyzed with curvature |h|) and, for lr > 0, flat_negative_steps: about
 * 1/(c·lr·|λmin|), the steps in which the most negative of them would grow
 * the RMS distance by a factor e (∞: none). */
void cli_print_flat(const char *label, const sgdstab_reduced *red, double c,
                    double lr);
void cli_json_flat(cJSON *obj, const sgdstab_reduced *red, double c,
                   double lr);

/* S_0 from --init, validated and factorized (second_moment.h); errors
 * name the file. */
int cli_load_init(const char *path, size_t p, sgdstab_second_moment **S0);

/* The exact E‖δ_t‖² (m2) and E L_t (loss) for t = 0..steps from start
 * (param_space.h; NULL: I/p) at cfg, as `evolve` reports them: with the
 * directions that never move, in cfg's loss convention, and the additive
 * gradient noise (NULL: none; cli_gradient_noise). */
int cli_exact_evolve(const cli_session *ses, const sgdstab_config *cfg,
                     size_t steps, const sgdstab_start *start,
                     const double *noise, double *m2, double *loss);

/* The additive gradient noise C (stationary.h) at cfg of the file's
 * residuals R and label noise sigma, into *C (malloc'd; NULL when there is
 * neither), and the statistics of the per-sample gradients.  A mean
 * gradient that is not ≈ 0 is a data error ("not a stationary point"),
 * unless weight decay balances it. */
int cli_gradient_noise(const cli_args *a, const cli_session *ses,
                       const sgdstab_config *cfg, double sigma, double **C,
                       sgdstab_gradient_stats *stats);

/* The stationary state at cfg (stable) for the noise C: W (r×r), the
 * solve's figures and the summary (stationary.h); max_it 0: the
 * default. */
int cli_stationary(const cli_args *a, const cli_session *ses,
                   const sgdstab_config *cfg, const double *C, size_t max_it,
                   double *W, sgdstab_stationary_info *info,
                   sgdstab_stationary_summary *sum);

#endif
