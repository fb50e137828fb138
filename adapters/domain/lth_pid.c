#include "lth_pid.h"

#include "hub_error.h"
#include "lth_province.h"

#include <stdio.h>
#include <string.h>

static int lth__pid_fail(const char **problem, const char *sentence)
{
    if (problem)
        *problem = sentence;
    return HUB_EINVAL;
}

int lth_pid_check(const char *pid, lth_pid_info_t *out, const char **problem)
{
    if (!pid)
        return lth__pid_fail(problem, "no personal ID number given");
    size_t len = strnlen(pid, LTH_PID_LEN + 1);
    for (size_t i = 0; i < len; i++)
        if (pid[i] < '0' || pid[i] > '9')
            return lth__pid_fail(problem, "a personal ID number has digits only");
    if (len != LTH_PID_LEN)
        return lth__pid_fail(problem, "a personal ID number has exactly 12 digits");
    const lth_province_t *province = lth_province_find(pid);
    if (!province)
        return lth__pid_fail(
            problem, "the first 3 digits are not a province code (001 Hà Nội … 096 Cà Mau)");
    int sex_century = pid[3] - '0';
    if (sex_century > 5)
        return lth__pid_fail(problem, "the 4th digit (sex and century of birth) must be 0 to 5");
    if (out) {
        memset(out, 0, sizeof *out);
        out->sex = sex_century % 2 == 0 ? LTH_SEX_MALE : LTH_SEX_FEMALE;
        out->century = 1900 + 100 * (sex_century / 2);
        out->birth_year = out->century + 10 * (pid[4] - '0') + (pid[5] - '0');
        memcpy(out->province_code, province->code, 3);
        out->province_name = province->name;
        uint32_t seq = 0;
        for (int i = 6; i < LTH_PID_LEN; i++)
            seq = seq * 10 + (uint32_t)(pid[i] - '0');
        out->sequence = seq;
    }
    if (problem)
        *problem = NULL;
    return 0;
}

int lth_pid_compose(const char *province_code, lth_sex_t sex, int birth_year, uint32_t sequence,
                    char out[LTH_PID_LEN + 1])
{
    if (!province_code || strlen(province_code) != 3 || !lth_province_find(province_code) ||
        birth_year < 1900 || birth_year > 2199 || sequence > 999999u ||
        (sex != LTH_SEX_MALE && sex != LTH_SEX_FEMALE) || !out)
        return HUB_EINVAL;
    int sex_century = 2 * ((birth_year - 1900) / 100) + (sex == LTH_SEX_FEMALE);
    snprintf(out, LTH_PID_LEN + 1, "%.3s%d%02d%06u", province_code, sex_century, birth_year % 100,
             (unsigned)sequence);
    return 0;
}

void lth_pid_echo(const char *key, char out[LTH_PID_ECHO_MAX + 1])
{
    size_t i = 0;
    for (; key && key[i] && i < LTH_PID_ECHO_MAX; i++)
        out[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
    out[i] = '\0';
}
