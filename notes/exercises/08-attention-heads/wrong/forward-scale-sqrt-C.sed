# scales each head's scores by 1/sqrt(C), the one-head scale, instead of 1/sqrt(C/2) (forward only)
/^static void attention_forward(/,/^}/ s|real scale = (real)(1 / sqrt((double)Ch));|real scale = (real)(1 / sqrt((double)C));|
