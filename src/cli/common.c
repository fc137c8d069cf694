/* Loading and factorizing the problem for every subcommand. */
#include "cli.h"

int cli_load(const cli_args *a, sgdstab_problem **prob, sgdstab_reduced **red)
{
    sgdstab_error err;
    *prob = NULL;
    *red = NULL;
    if (sgdstab_problem_load_with_hessian(a->file, a->hessian, NULL, prob, &err))
        return cli_report(&err);
    if (sgdstab_reduce(*prob, a->rank_rtol, red, &err)) {
        sgdstab_problem_free(*prob);
        *prob = NULL;
        return cli_report(&err);
    }
    return EXIT_OK;
}

int cli_stability(const cli_args *a, const sgdstab_reduced *red,
                  sgdstab_stability **s)
{
    sgdstab_error err;
    /* mse: PyTorch's MSELoss averages over n·k entries without the ½. */
    double c = a->loss_scale > 0 ? a->loss_scale : 2.0 / (double)red->k;
    *s = sgdstab_stability_alloc(red, c, &err);
    return *s ? EXIT_OK : cli_report(&err);
}

int cli_session_open(const cli_args *a, size_t batch, cli_session *ses)
{
    ses->stab = NULL;
    if (cli_load(a, &ses->prob, &ses->red))
        return EXIT_DATA;
    int status = batch ? cli_check_batch(a, ses->prob->n, batch) : EXIT_OK;
    if (!status)
        status = cli_stability(a, ses->red, &ses->stab);
    if (status)
        cli_session_close(ses);
    return status;
}

void cli_session_close(cli_session *ses)
{
    sgdstab_stability_free(ses->stab);
    sgdstab_reduced_free(ses->red);
    sgdstab_problem_free(ses->prob);
    ses->stab = NULL;
    ses->red = NULL;
    ses->prob = NULL;
}
