// Grading harness for exercise 8 (Step 1: the sde schedule, and Euler-Maruyama of the forward SDE). grade.sh
// compiles it (float, like ./diffusion) with -DSTUDENT_C='"copy of the student's diffusion.c"'; in that copy the
// Monte Carlo sample count NS of `./diffusion check` is 10000 instead of 100000, so that claim (b) takes a second.
//   harness sdes        claim (b) of `./diffusion check`: the student's check_forward_sdes, on the student's sde
//                       schedule with T = 1000. grade.sh then recomputes every line's expected value and
//                       tolerance itself (the tolerance of (b) depends on the student's em_mean and em_var).
//   harness ARGS...     anything else runs the student's own main (grade.sh: `schedule`)
#define main student_main
#include STUDENT_C
#undef main

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "sdes")) {
        Rng rng = {1};
        Schedule sde = schedule_make(SCHEDULE_SDE, 1000);
        int fails = check_forward_sdes(&sde, &rng);
        schedule_free(&sde);
        return fails ? 1 : 0;
    }
    return student_main(argc, argv);
}
