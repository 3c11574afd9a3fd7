// Grading harness for exercise 3 (eq. (2) and the DDPM step). grade.sh compiles it with -DDOUBLE and
// -DSTUDENT_C='"path/to/student/diffusion.c"': the student's file is included whole, its main renamed.
//   harness samplers    claims (f) and (g) of `./diffusion check`, i.e. the student's check_samplers(), in double
// It runs only the sampler claims, in about a second, instead of the whole `check` (whose Monte Carlo claims
// (a)-(e) do not involve this exercise and take half a minute); `./diffusion check` prints the same lines.
#define main student_main
#include STUDENT_C
#undef main

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "samplers")) {
        Rng rng = {1};
        return check_samplers(&rng) ? 1 : 0;
    }
    fprintf(stderr, "usage: harness samplers\n");
    return 2;
}
