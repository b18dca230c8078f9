# ruff: noqa: RUF001, RUF002, SIM905  (the dotless i is meant; a word list reads best as text)
"""Stop words where the published lists fail the site's languages: Azerbaijani, which
stopwordsiso has no list for, and Russian, whose stopwordsiso list holds news content words.

Azerbaijani (``AZERBAIJANI``): the language's function words, written for this project:
conjunctions and particles, postpositions, personal, demonstrative and question pronouns in
their common case forms, and the forms of "to be", "to have/exist" and the auxiliaries
olmaq and etmək that build verbs from nouns. Lower case as ``lexical.lower`` writes
Azerbaijani (dotless ı). Numerals are left out: figures tell one story from another.

Russian (``RUSSIAN_CONTENT_WORDS``): the entries of stopwordsiso's Russian list (559 words,
from several sources) that name things a news story is about (москва, россия, война, год,
город, деньги, люди...), its verbs and adjectives of content (сказал, новый, главный...) and
its numerals; they are taken out of the list, which keeps its function words.
"""

AZERBAIJANI = frozenset(
    """
    və ilə amma ancaq lakin fəqət həm ya yaxud yoxsa çünki ki əgər hərçənd həmçinin habelə
    isə da də nə nəinki həmin hətta yəni belə elə beləliklə deməli bəs axı məgər hələ artıq
    indi sonra əvvəl qabaq üçün kimi qədər görə dair barədə haqqında üzrə tərəfindən
    arasında ərzində zamanı vaxtı başqa savayı qarşı doğru sarı ötrü bəri kənar əsasında
    mən sən biz siz onlar məni səni onu bizi sizi onları mənim sənin onun bizim sizin
    onların mənə sənə ona bizə sizə onlara məndə səndə onda bizdə sizdə onlarda məndən
    səndən ondan bizdən sizdən onlardan bu bunu bunun buna bunda bundan bunlar bunları
    bunların bunlara şu öz özü özünü özünün özünə özləri özlərini kim kimə kimin nəyi
    nəyin hansı necə niyə harada hara haradan neçə hər heç bəzi bütün digər hamı hamısı
    çox daha ən lap olduqca deyil var yox yoxdur vardır idi imiş isə ikən olan olaraq
    olub olur oldu olmuşdur olmuş olacaq olmaq olduğu olduğunu edir edib etdi etmək
    etmişdir edilib edilir edilmişdir edən etdiyi etməsi bildirib bildirdi qeyd mi mı mu mü
    """.split()
)

RUSSIAN_CONTENT_WORDS = frozenset(
    """
    белый близко большой важная важное важные важный вверх вдали вечер взгляд взять вид
    видел видеть вниз внизу вода война вопрос времени время вернуться второй выйти главный
    глаз говорил говорит говорить год года году голова голос город давать далекий далеко
    дать дверь двадцатый двадцать двенадцатый двенадцать девятнадцатый девятнадцать
    девятый девять дел делал делать делаю дело день деньги десятый десять дом дорога
    друг душа ждать жена женщина жизнь жить занят занята занято заняты земля знать иди
    идти имя книга комната конец лежать лет лицо любить люди маленький мать машина место
    миллионов минута мир мира многочисленная многочисленное многочисленные многочисленный
    мор москва мочь народ начала начать найти нога ночь новый нужный окно ответить отец
    одиннадцатый одиннадцать писать плечо подойди подумать пойти пол получить помнить
    понимать понять посмотреть последний правда процентов путь пятнадцатый пятнадцать
    пятый пять работа работать ребенок решить россия рука русский ряд свет сделать
    седьмой семнадцатый семнадцать семь сидеть сила сказал сказала сказать слово случай
    смотреть советский спросить стал старый стать стол сторона стоять страна считать
    товарищ третий три тринадцатый тринадцать тысяч увидеть улица уметь утро хороший
    хотеть час часть человек четвертый четыре четырнадцатый четырнадцать шестнадцатый
    шестнадцать шестой шесть восемнадцатый восемнадцать восемь восьмой
    """.split()
)
