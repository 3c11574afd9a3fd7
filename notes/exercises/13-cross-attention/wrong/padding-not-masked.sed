# the padding mask ignored: the softmax over all L token slots, forward and backward alike (gradcheck's rows pass; its "padding ignored" check does not)
/^static void cross_attention_\(forward\|backward\)(/,/^}/ {
s/, 1, len\[b\]);.*$/, 1, L);/
/for (int j = len\[b\]; j < L; j++) pb\[i \* L + j\] = 0;/d
s/ds\[i \* L + j\] = j < len\[b\] ? ds\[i \* L + j\] \* scale : 0;/ds[i * L + j] *= scale;/
}
