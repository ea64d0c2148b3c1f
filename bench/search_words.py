"""Chat-like English and Russian text for bench/search_bench.py.

Words come from two lists of common words, extended by each language's usual endings into a
long tail (about 20,000 distinct words in all), and are drawn with Zipf's law (the k-th most
common word about 1/k as often as the first), as words are in real conversations: a few words
are in a large share of all messages, most are rare.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator


def _words(text: str) -> list[str]:
    return text.split()


ENGLISH = _words("""
the to and a i you it of is that in we for this on be have my do not with are so just
can at but if me what will all your was get know like up out about there they one now
think good no how time he go yes ok okay would when see here then some our from an
right need tomorrow today make work more well going them too really did had could us
also want back new got thanks thank sure take where which something still come look
day why let much over after any because only who should way over again please been
morning evening night week weekend monday tuesday wednesday thursday friday saturday
sunday meeting call phone email message chat team project plan release server client
build test deploy review branch commit merge bug fix issue ticket report document file
picture photo video link page site price order invoice payment money budget cost bank
office home house room kitchen car train bus flight airport hotel trip holiday travel
coffee tea lunch dinner breakfast pizza beer wine water food shop store market city
street park river lake mountain beach sea weather rain snow sun cold hot warm winter
summer spring autumn family mother father brother sister friend children kids school
teacher student class lesson exam homework book music song movie game football match
doctor hospital health birthday party gift present wedding news story idea question
answer problem reason result change update version feature design data database
backup password account login user group channel invite contact address number
minute hour early late soon later never always often sometimes maybe probably almost
great nice fine bad happy sorry glad funny strange important easy hard quick slow big
small long short old young best better worse last first next other same different
open close start stop send receive read write listen watch play help ask tell say talk
meet wait stay leave bring buy pay sell find lose keep forget remember understand
agree believe hope feel try use show move turn run walk drive fly eat drink sleep
love hate miss enjoy finish begin check call visit cook clean wash fix learn teach
""")

RUSSIAN = _words("""
и в не на я что он с это а как по но ты к у же вы за бы из мы так вот от все она
то они да нет еще уже когда может если только или был меня мне тебя тебе нас вам
сегодня завтра вчера сейчас потом скоро давно всегда никогда иногда часто очень
хорошо плохо спасибо пожалуйста привет пока ладно конечно наверное точно просто
утро вечер ночь день неделя выходные понедельник вторник среда четверг пятница
суббота воскресенье встреча звонок телефон почта сообщение чат команда проект план
релиз сервер клиент сборка тест выкладка ревью ветка коммит слияние ошибка задача
отчет документ файл фото видео ссылка страница сайт цена заказ счет оплата деньги
бюджет банк офис дом квартира кухня машина поезд автобус самолет аэропорт гостиница
поездка отпуск путешествие кофе чай обед ужин завтрак пицца пиво вино вода еда
магазин рынок город улица парк река озеро гора пляж море погода дождь снег солнце
холодно жарко тепло зима лето весна осень семья мама папа брат сестра друг дети
школа учитель студент урок экзамен книга музыка песня фильм игра футбол матч врач
больница здоровье праздник подарок свадьба новости история идея вопрос ответ
проблема причина результат изменение обновление версия функция дизайн данные база
пароль аккаунт пользователь группа канал приглашение контакт адрес номер минута час
рано поздно быстро медленно большой маленький новый старый хороший плохой важный
легкий трудный последний первый следующий другой тот самый разный
ёлка ёж лёд мёд всё ещё зелёный тёплый шёл пошёл нашёл
открыть закрыть начать закончить отправить получить читать писать слушать смотреть
играть помочь спросить сказать говорить встретить ждать остаться уйти принести
купить платить продать найти потерять забыть помнить понимать думать знать хотеть
любить работать делать идти ехать лететь есть пить спать учить готовить убрать
проверить позвонить написать прочитать посмотреть подумать приехать уехать
Москва Петербург Казань Новосибирск Екатеринбург Россия Лондон Берлин Париж
""")

_ENGLISH_ENDINGS = ("", "s", "ed", "ing", "er", "ly", "ers", "ness", "able", "ful")
_RUSSIAN_ENDINGS = ("", "а", "у", "ом", "ой", "ы", "е", "ами", "ах", "ов", "ая", "ое", "ие",
                    "ых", "ть", "ла", "ли", "ет", "ют", "ешь")
_SYLLABLES_EN = ("ka", "lo", "mi", "ra", "ten", "dor", "vin", "sel", "ma", "rik", "bel", "ton")
_SYLLABLES_RU = ("ка", "ло", "ми", "ра", "тен", "дор", "вин", "сель", "ма", "рик", "бел", "тон")


def vocabulary() -> list[str]:
    """Every word, the most common first (the order the Zipf weights follow)."""
    rng = random.Random(7)
    words: list[str] = []
    # The common words first, the two languages interleaved; then their forms; then names
    # and rarer words made of syllables.
    for english, russian in itertools.zip_longest(ENGLISH, RUSSIAN):
        words.extend(word for word in (english, russian) if word)
    for ending_en, ending_ru in zip(_ENGLISH_ENDINGS[1:], _RUSSIAN_ENDINGS[1:], strict=False):
        words.extend(word + ending_en for word in ENGLISH if len(word) > 3)
        words.extend(word + ending_ru for word in RUSSIAN if len(word) > 3)
    words.extend(word + ending for ending in _RUSSIAN_ENDINGS[len(_ENGLISH_ENDINGS):]
                 for word in RUSSIAN if len(word) > 3)
    for syllables in (_SYLLABLES_EN, _SYLLABLES_RU):
        for first, second, third in itertools.product(syllables, repeat=3):
            words.append(first + second + third)
    seen: set[str] = set()
    unique = []
    for word in words:
        if word.lower() not in seen:
            seen.add(word.lower())
            unique.append(word)
    head, tail = unique[:len(ENGLISH) + len(RUSSIAN)], unique[len(ENGLISH) + len(RUSSIAN):]
    rng.shuffle(tail)
    return head + tail


class Corpus:
    """Messages of 1 to 24 words (about 9 on average) drawn from `vocabulary()`."""

    def __init__(self, seed: int = 1) -> None:
        self.words = vocabulary()
        weights = [1.0 / (rank + 1) for rank in range(len(self.words))]
        self.cumulative = list(itertools.accumulate(weights))
        self.tail = list(itertools.accumulate(weights[100:]))
        self.rng = random.Random(seed)

    def messages(self, count: int) -> Iterator[str]:
        draw = self.rng.choices
        words, cumulative = self.words, self.cumulative
        for _ in range(count):
            length = min(24, 1 + int(self.rng.expovariate(1 / 8)))
            text = " ".join(draw(words, cum_weights=cumulative, k=length))
            yield text[0].upper() + text[1:]

    def query_word(self) -> str:
        """A word someone searches for: never one of the 100 most common ("the", "и": nobody
        looks for those); half the time one as often as it is written (so the common ones
        often), half the time any word of the vocabulary alike (most of them rare)."""
        if self.rng.random() < 0.5:
            return self.rng.choices(self.words[100:], cum_weights=self.tail)[0]
        return self.rng.choice(self.words[100:])
