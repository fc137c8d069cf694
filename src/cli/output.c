#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_report(const sgdstab_error *err)
{
    fprintf(stderr, "sgdstab: %s\n", err->msg);
    return EXIT_DATA;
}

cJSON *cli_json_value(double value)
{
    if (!isfinite(value))
        return cJSON_CreateNull();
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", value);
    return cJSON_CreateRaw(buf);
}

void cli_json_number(cJSON *obj, const char *key, double value)
{
    cJSON_AddItemToObject(obj, key, cli_json_value(value));
}

void cli_json_size(cJSON *obj, const char *key, size_t value)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%zu", value);
    cJSON_AddRawToObject(obj, key, buf);
}

int cli_json_print(cJSON *obj)
{
    char *text = cJSON_Print(obj);
    cJSON_Delete(obj);
    if (!text) {
        fprintf(stderr, "sgdstab: out of memory printing JSON\n");
        return EXIT_DATA;
    }
    puts(text);
    free(text);
    return EXIT_OK;
}

int cli_finish_stdout(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sgdstab: error writing to standard output\n");
        return status ? status : EXIT_DATA;
    }
    return status;
}

void cli_csv_number(FILE *f, double value, const char *sep)
{
    if (isnan(value))
        fprintf(f, "nan%s", sep);
    else if (isinf(value))
        fprintf(f, "%sinf%s", value < 0 ? "-" : "", sep);
    else
        fprintf(f, "%.17g%s", value, sep);
}

sgdstab_outfile *cli_csv_open(const char *path)
{
    sgdstab_error err;
    sgdstab_outfile *of = sgdstab_outfile_open(path, &err);
    if (!of)
        cli_report(&err);
    return of;
}

int cli_csv_commit(sgdstab_outfile *of)
{
    sgdstab_error err;
    return sgdstab_outfile_commit(of, &err) ? cli_report(&err) : EXIT_OK;
}
