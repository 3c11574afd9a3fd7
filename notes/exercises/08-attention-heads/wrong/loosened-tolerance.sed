# scales each head's scores by 1/sqrt(C), the one-head scale, instead of 1/sqrt(C/2) (forward only), and gradcheck loosened: a macro at the end of the file makes notes/check.c divide every error by 1e30
/^static void attention_forward(/,/^}/ s|real scale = (real)(1 / sqrt((double)Ch));|real scale = (real)(1 / sqrt((double)C));|
$a\
#define fmax(a, b) 1e30
