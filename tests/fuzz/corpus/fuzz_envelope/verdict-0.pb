
$01a206f5-2601-7366-a54e-dcbdc4c4b7fftessera.ledger.v1.LedgerPosteddemo"hq*$01a206f5-25f1-7605-b980-aa20d89154280Îïñì²˜8Îïñì²˜B$01a206f5-25f2-71b4-9ff4-b0dc6eedf80fJ$01a206f5-25f2-71b3-9bd3-e42d37ce0a26R
serviceledgerÒÚ
$01a206f5-25f2-71b3-9bd3-e42d37ce0a26$01a206f5-2601-7365-b20a-345cfece8874topup">
+member:01a206f5-25f1-7605-b980-aa20d8915428sv_principalˆ'"8
tenant:demo:branch:hq:sv_soldsv_principaløØÿÿÿÿÿÿÿ*ˆ' 8ˆ'@ˆ'