"""Crisis signal families for fr, pt, ht, tl, ar, zh, vi, ko and ru (triage/rules/crisis_intl.yaml).

Rules only (no learned model): two DIFFERENT families of crisis_intl.yaml make a crisis, one
alone does not; the against-crisis rules (safe now, informational question, the past) outweigh a
signal. All texts are invented."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from triage.engine import classify_text, default_rules_dir, load_ruleset

INTL_FILE = default_rules_dir() / "crisis_intl.yaml"
LANGS = ("fr", "pt", "ht", "tl", "ar", "zh", "vi", "ko", "ru")


@pytest.fixture(scope="module")
def rs():
    return load_ruleset(None, with_model=False)


@pytest.fixture(scope="module")
def intl_rules():
    return yaml.safe_load(INTL_FILE.read_text(encoding="utf-8"))["rules"]


@pytest.fixture(scope="module")
def intl_ids(intl_rules):
    return {r["id"] for r in intl_rules if r.get("weight", 1) > 0}


# ---- crises that only the new families catch: two of them together ---------------------------

CRISES = [
    ('Je me suis cachée derrière une station-service, il me cherche en voiture', 'fr'),
    ('Dans une heure ils vont nous emmener dans une autre ville', 'fr'),
    ('Mon patron ne me laisse pas sortir, je suis terrifiée', 'fr'),
    ('Je me suis échappée, il est en bas dans la voiture', 'fr'),
    ("Il a un couteau, qu'est-ce que je dois faire", 'fr'),
    ('Me escondi no banheiro, ele está me procurando', 'pt'),
    ('Fugi da casa do patrão, ele vai voltar daqui a uma hora', 'pt'),
    ('O patrão não me deixa sair e estou apavorada', 'pt'),
    ('Ele tem uma faca, o que eu faço?', 'pt'),
    ('Amanhã cedo vão levar a gente pra outra cidade, tô com medo', 'pt'),
    ('M kache nan twalèt la, li ap chache m', 'ht'),
    ('Patwon an pa kite m soti, m ap tranble', 'ht'),
    ('M fèk chape, yo la deyò', 'ht'),
    ('Li gen yon kouto, tanpri vin chache m', 'ht'),
    ('Demen maten yo pral mennen nou yon lòt kote, m ap kriye', 'ht'),
    ('Nagtatago ako sa CR, hinahanap nila ako', 'tl'),
    ('Ayaw nila akong palabasin, takot na takot ako', 'tl'),
    ('Nakalabas na ako pero pabalik na siya', 'tl'),
    ('May baril siya, ano ang gagawin ko', 'tl'),
    ('Ililipat kami bukas ng umaga, sunduin nyo ako', 'tl'),
    ('أنا مستخبية في الحمام وهو بيدور عليا', 'ar'),
    ('الكفيل ما بيخليني اطلع وأنا خايفة', 'ar'),
    ('هربنا من البيت والراجل جاي ورانا', 'ar'),
    ('معاه مسدس، ارجوك تعالوا بسرعة', 'ar'),
    ('بعد ساعة هينقلونا لمكان تاني', 'ar'),
    ('我躲在厕所里，他在到处找我', 'zh'),
    ('老板不准我出去，我很怕', 'zh'),
    ('我们逃出来了，他们就要回来了', 'zh'),
    ('他有枪，怎么办', 'zh'),
    ('一小时后他们要把我们转移', 'zh'),
    ('Em dang tron trong nha ve sinh, anh ta dang tim em', 'vi'),
    ('Em đang trốn trong nhà vệ sinh, anh ta đang tìm em', 'vi'),
    ('Ong chu khong cho em ve, em dang khoc', 'vi'),
    ('Em vua tron thoat, han sap quay lai', 'vi'),
    ('Han co sung, phai lam sao', 'vi'),
    ('Sang mai ho se chuyen chung em di noi khac, lam on den nhanh', 'vi'),
    ('화장실에 숨어 있어요. 그 남자가 저를 찾고 있어요', 'ko'),
    ('사장이 나가지 못하게 해요. 너무 무섭고 떨려요', 'ko'),
    ('방금 탈출했어요. 그놈이 오고 있어요', 'ko'),
    ('그 사람이 칼을 들고 있어요 제발 빨리 와 주세요', 'ko'),
    ('내일 아침에 다른 곳으로 옮긴대요. 어떡해요', 'ko'),
    ('Я прячусь в туалете, он ищет меня', 'ru'),
    ('Хозяин не выпускает меня, я в панике', 'ru'),
    ('Я убежала, он уже у подъезда', 'ru'),
    ('У него нож, что мне делать', 'ru'),
    ('pomogite menya zaperli, on za dveryu', 'ru'),
    ('Завтра утром нас перевезут в другой город, умоляю', 'ru'),
    ("il est à la porte, j'ai très peur", 'fr'),
    ("ils ont confisqué mon portable, je t'écris depuis les toilettes", 'fr'),
    ('ele ta voltando agorinha, me escondi atrás do posto', 'pt'),
    ('mwen kache dèyè ponp gaz la, tanpri vin chache m', 'ht'),
    ('nandito pa siya, kinakabahan ako', 'tl'),
    ('em vua tron ra, han dang di xe vong quanh', 'vi'),
    ('ya pryachus v tualete, on vernetsya cherez chas', 'ru'),
]


@pytest.mark.parametrize(("text", "lang"), CRISES)
def test_two_new_families_make_a_crisis(rs, intl_ids, text, lang):
    r = classify_text(text, lang, rs)
    assert r.category == "crisis", (r.matched, r.scores)
    assert r.urgency == "immediate"
    mine = {m for m in r.matched if m in intl_ids}
    assert len(mine) >= 2, r.matched


# ---- not crises: one family alone, safety now, a question, the past, a shift tonight ----------

NOT_CRISES = [
    ('Le patron a confisqué nos passeports au restaurant, je voulais le signaler.', 'fr'),
    ("Je suis en sécurité maintenant chez ma soeur, il m'a frappée la semaine dernière.", 'fr'),
    ('Quels sont les signes de la traite des êtres humains ?', 'fr'),
    ('Nous travaillons ce soir au restaurant.', 'fr'),
    ("Il y a deux ans je me suis échappée d'un patron qui ne me laissait pas sortir", 'fr'),
    ('O patrão confiscou os passaportes dos trabalhadores da fazenda.', 'pt'),
    ('Estou segura agora na casa da minha irmã, ele me bateu semana passada.', 'pt'),
    ('Quais são os sinais de tráfico de pessoas?', 'pt'),
    ('Hoje de noite a gente trabalha no restaurante.', 'pt'),
    ('Eu fugi de casa muitos anos atrás, quando eu era adolescente', 'pt'),
    ('Patwon an konfiske paspò nou yo, mwen vle fè yon rapò.', 'ht'),
    ('Mwen an sekirite kounye a lakay sè m, li te bat mwen semèn pase.', 'ht'),
    ('Ki siy ki montre yon moun viktim trafik?', 'ht'),
    ('Nou travay aswè a nan restoran an.', 'ht'),
    ('Sa fè senk lane m te chape.', 'ht'),
    ('Kinumpiska ng amo ang passport ng mga trabahador doon.', 'tl'),
    ('Ligtas na ako sa bahay ng kapatid ko, sinaktan niya ako noong isang linggo.', 'tl'),
    ('Ano ang mga senyales ng human trafficking?', 'tl'),
    ('Magtatrabaho kami mamayang gabi sa restaurant.', 'tl'),
    ('Noong bata pa ako, tumakas ako sa amo ko.', 'tl'),
    ('صاحب الشغل ماسك الجواز بتاع كل العمال', 'ar'),
    ('أنا بأمان الحين عند اختي، ضربني الأسبوع الماضي', 'ar'),
    ('ما هي علامات الاتجار بالبشر؟', 'ar'),
    ('نشتغل الليلة في المطعم', 'ar'),
    ('هربت من الكفيل قبل سنتين', 'ar'),
    ('老板拿走了工人们的护照。', 'zh'),
    ('我现在很安全，在姐姐家，上周他打了我。', 'zh'),
    ('人口贩卖有哪些迹象？', 'zh'),
    ('我们今晚在餐厅上班。', 'zh'),
    ('几年前我逃出来了', 'zh'),
    ('Ong chu tich thu ho chieu cua cong nhan.', 'vi'),
    ('Em da an toan o nha chi, tuan truoc han danh em.', 'vi'),
    ('Nhung dau hieu cua buon ban nguoi la gi?', 'vi'),
    ('Toi nay chung toi lam o nha hang.', 'vi'),
    ('Hai nam truoc em tron thoat khoi chu.', 'vi'),
    ('사장이 직원들 신분증을 압수했어요', 'ko'),
    ('지금은 언니네 집에 있어서 안전해요. 지난주에 그가 때렸어요', 'ko'),
    ('인신매매의 징후는 뭐예요?', 'ko'),
    ('오늘 밤 식당에서 일해요', 'ko'),
    ('몇 년 전에 탈출했어요', 'ko'),
    ('Начальник забрал документы у всех рабочих', 'ru'),
    ('Я уже у сестры, я в безопасности, на прошлой неделе он ударил меня', 'ru'),
    ('Какие признаки торговли людьми?', 'ru'),
    ('Мы работаем сегодня вечером в ресторане', 'ru'),
    ('Много лет назад я сбежала от хозяина', 'ru'),
]


@pytest.mark.parametrize(("text", "lang"), NOT_CRISES)
def test_one_family_or_an_against_rule_is_not_a_crisis(rs, text, lang):
    r = classify_text(text, lang, rs)
    assert r.category != "crisis", (r.matched, r.scores)


def test_every_language_has_at_least_four_rows_each_way():
    assert all(Counter(lang for _, lang in CRISES)[lg] >= 4 for lg in LANGS)
    assert all(Counter(lang for _, lang in NOT_CRISES)[lg] >= 4 for lg in LANGS)


# ---- the file itself ---------------------------------------------------------------------------

def test_each_language_has_signal_families_and_against_rules(intl_rules):
    for lang in LANGS:
        ids = {r["id"] for r in intl_rules if r["lang"] == lang}
        for family in ("now", "nearby", "hiding", "escape", "control", "fear", "plea_soft", "weapon",
                       "moving", "safe_now", "informational", "past"):
            assert f"crisis.{lang}.{family}" in ids


def test_signal_families_weigh_one_and_against_rules_are_negative(intl_rules):
    for r in intl_rules:
        assert r["id"].split(".")[1] == r["lang"]
        family = r["id"].split(".")[2]
        if family in ("safe_now", "not_emergency", "informational", "past"):
            assert r["weight"] < 0, r["id"]
        else:
            assert r.get("weight", 1) == 1, r["id"]


def test_against_rules_are_the_models_veto(rs, intl_rules):
    against = {r["id"] for r in intl_rules if r.get("weight", 1) < 0}
    assert against and against <= rs.against_crisis


def test_weapon_families_mark_danger(rs):
    r = classify_text("Il a un couteau, qu'est-ce que je dois faire", "fr", rs)
    assert r.indicators.imminent_danger
