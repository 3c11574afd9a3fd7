// Grading harness of the schedule exercises (forward-sde, cosine-schedule, posterior-coefficients):
// the student's own program (`schedule` prints the tables), and
//   harness twice   every schedule made twice: identical bytes (the OpenMP build)
//   harness sdes    claim (b) of notes/check.c on the student's sde schedule (T = 1000): grade.sh
//                   judges every line again with its own expected value and tolerance
#include "harness.h"

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "twice")) {
        int fails = 0;
        for (int k = 0; k < 3; k++) {
            Schedule a = schedule_make((ScheduleKind)k, 1000),
                     b = schedule_make((ScheduleKind)k, 1000);
            char what[64];
            snprintf(what, sizeof what, "schedule %s T=1000 (all 7 columns)", schedule_names[k]);
            fails += same_bytes(what, a.beta, b.beta, 7 * 1001 * sizeof(double));
            schedule_free(&a);
            schedule_free(&b);
        }
        return fails ? 1 : 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "sdes")) {
        Rng rng = {1};
        Schedule sde = schedule_make(SCHEDULE_SDE, 1000);
        int fails = check_forward_sdes(&sde, &rng);
        schedule_free(&sde);
        return fails ? 1 : 0;
    }
    return student_main(argc, argv);
}
