/* What the subcommands write: JSON numbers and documents, CSV numbers and
 * files, the checks and commit of output files, what FILE's metadata says
 * of the minimum, and the final check of stdout. */
#ifndef SGDSTAB_CLI_OUTPUT_H
#define SGDSTAB_CLI_OUTPUT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

#include "options.h"
#include "sgdstab/config.h"
#include "sgdstab/outfile.h"
#include "sgdstab/problem.h"
#include "sgdstab/theory.h"

/* JSON numbers carry 17 significant digits (non-finite ones become null). */
void cli_json_number(cJSON *obj, const char *key, double value);
cJSON *cli_json_value(double value);  /* the same, as an item */
void cli_json_size(cJSON *obj, const char *key, size_t value);

/* A JSON object opening with the problem's keys file, n, k, p (null when
 * a Gram matrix does not tell it) and input ("jacobian" or "gram"). */
cJSON *cli_json_problem(const sgdstab_problem *prob);

/* "p", null when 0 (not known); "input": cli_input_name. */
void cli_json_params(cJSON *o, size_t p);
void cli_json_input(cJSON *o, const sgdstab_problem *prob);

/* What the problem came as: "jacobian" (J) or "gram" (K). */
const char *cli_input_name(const sgdstab_problem *prob);

/* "null_dim": p − r, the directions no J_i moves; null when p is not
 * known. */
void cli_json_null_dim(cJSON *o, const sgdstab_problem *prob,
                       const sgdstab_reduced *red);

/* p as text, "unknown" when 0 (a Gram matrix that does not tell it). */
typedef struct {
    char s[24];
} cli_count_text;
cli_count_text cli_params(size_t p);

/* The numbers values[i] under keys[i], i < n (a record of a table). */
void cli_json_numbers(cJSON *obj, size_t n, const char *const keys[],
                      const double values[]);

/* A new object appended to array (the next element). */
cJSON *cli_json_append_object(cJSON *array);

/* The keys lr, batch and sampling of a configuration. */
void cli_json_point(cJSON *obj, const sgdstab_config *cfg);

/* The object "optimizer" of cfg: kind, momentum, dampening, nesterov,
 * weight_decay, beta2, eps, preconditioned, and the description in
 * words. */
void cli_json_optimizer(cJSON *obj, const sgdstab_config *cfg);

/* "optimizer: <in words>" on stdout, for any optimizer but plain SGD,
 * saying when it is the file's (a->optimizer_from_file). */
void cli_print_optimizer(const cli_args *a, const sgdstab_config *cfg);

/* The keys sharpness, hessian_frobenius and hessian_trace (λmax, ‖H‖_F and
 * tr H in the loss convention). */
void cli_json_hessian(cJSON *obj, double sharpness, double frobenius,
                      double trace);
/* Those of th, then nonuniformity and alignment_min. */
void cli_json_theory(cJSON *obj, const sgdstab_theory *th);

/* Print obj to stdout and free it; returns EXIT_OK or EXIT_DATA. */
int cli_json_print(cJSON *obj);
/* The same for JSON text (NULL: out of memory), freed after printing. */
int cli_json_print_text(char *text);

/* JSON text formatted as cJSON_Print formats a value on its own (the
 * library's metadata), as an item that cJSON_Print prints byte for byte
 * where it sits `depth` levels deep: every line after the first gets that
 * many more tabs.  NULL if out of memory. */
cJSON *cli_json_verbatim(const char *text, unsigned depth);

/* The JSON keys loss (half-mean, mse or the number, as --loss or FILE's
 * metadata gave it) and loss_scale (c). */
void cli_json_loss(cJSON *obj, const cli_args *a, const sgdstab_problem *prob,
                   double scale);

/* What FILE's metadata says of the minimum (provenance.h):
 * - the note on stderr (as cmd's, about file), one line, when it is not
 *   interpolating, saying whether the gradient noise of the residuals R is
 *   included (residual_noise);
 * - the JSON keys residual_rms, max_residual, target_rms (null when not
 *   given) and interpolating (true, false or null);
 * - the text line, after label, about the training residual (nothing when
 *   the metadata gives none). */
void cli_note_interpolation(const char *cmd, const char *file,
                            int residual_noise, const sgdstab_problem *prob);
void cli_json_provenance(cJSON *obj, const sgdstab_problem *prob);
void cli_print_residual(const char *label, const sgdstab_problem *prob);

/* A number in CSV: 17 significant digits, "nan"/"inf" as such. */
void cli_csv_number(FILE *f, double value, const char *sep);

/* Open --csv FILE (atomically replaced on commit); NULL after printing the
 * error. */
sgdstab_outfile *cli_csv_open(const char *path);
int cli_csv_commit(sgdstab_outfile *of);

/* Refuse (usage error, one line) an output that is the same file
 * (sgdstab_same_file) as an input (a->file, a->hessian, input) or as
 * another output, unless it is written in place (a device, FIFO,
 * /dev/stdout); NULL entries are skipped. */
int cli_check_outputs(const cli_args *a, const char *input,
                      const char *const *outputs, size_t no);

/* sgdstab_outfile_group_commit, the error printed: EXIT_OK or EXIT_DATA. */
int cli_outputs_commit(void);

/* Final check that stdout was written completely. */
int cli_finish_stdout(int status);

#endif
