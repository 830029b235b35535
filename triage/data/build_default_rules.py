"""The default triage rules, written for people: run `python triage/data/build_default_rules.py > triage/data/default_rules.json`.

Terms: lower-case Latin without diacritics; each word matches the beginning of a word, "=word" a whole word;
"a + b" needs both somewhere in the message, "a & b" both within one clause (between punctuation); "a|b" either; up to two words may stand between the words of a
phrase. The JSON is what the data migration loads on a new installation; afterwards supervisors own the rules in
the admin.
"""
import json

R = []
def rule(name, category, priority, terms, negatable=None):
    if negatable is None:  # a denial matters for dangers; for needs and questions "no money" is still a need
        negatable = priority in ("critical", "high") or category == "domestic_violence"
    R.append({"name": name, "category": category, "priority": priority, "terms": terms, "can_be_negated": negatable})

# "moja trogodišnja", "petogodišnjak": people name a child by its age.
AGES = "|".join(
    number + "godisnj"
    for number in "jedno dvo tro cetvoro cetvero peto sesto sedmo osmo devet deset jedanaest dvanaest".split()
) + "|toddler|infant|newborn|novorodj|malisan|little boy|little girl|=mala od|=mali od|malo dijete|malo dete|nephew|niece|necak|necakinj|sestric|bratic"
# Ikavian (Dalmatia, Herzegovina, the Krajina) says "dite", "dica", "divojčica".
KIDS_ALTS = "dijet|djec|djet|dete|deca|decu|beba|bebu|=sin|=sina|sinu|kcer|cerk|child|kids|baby|=son|daughter|maloljet|malodob|ucenik|ucenic|djevojcic|devojcic|divojcic|dite|=dica|=dicu|=dici|dicom|djecak|decak|tinejdz|teen|unuk|unuc|malog brat|malu sestr|mladj brat|mladj sestr|mladjeg brat|mladju sestr|" + AGES

# --- Suicide and self-harm ---------------------------------------------------------------------------
rule("Namjera samoubistva", "suicide_self_harm", "critical", [
    "ubi se", "se ubi", "ubij se", "oduz zivot", "oduzm zivot", "oduzet sebi zivot", "ruku na sebe",
    "zavrs sa sobom", "zavrs sa svim", "okoncat zivot", "okoncam zivot", "prekrat zivot", "kraj svemu", "kraj zivot",
    "ne zel ziv", "ne zel da ziv", "necu vise ziv", "ne zel vise ziv", "zel umr", "zel da umr", "hoc umr", "hoc da umr",
    "zelim nestat", "ne zelim postojat", "nece me bit", "me nece bit", "necete me vise", "nece me vise",
    "won't be here", "wont be here", "not be here tomorrow", "na sebi + pistolj|pusk|=noz|oruzj|upotrijeb",
    "protiv sebe + pistolj|pusk|oruzj",
    "kill myself", "killing myself", "end my life", "end it all", "take my life", "want to die", "wanna die",
    "going to die tonight", "dont want to live", "dont want to be alive", "no reason to live",
], negatable=True)
rule("Pokušaj ili plan samoubistva u toku", "suicide_self_harm", "critical", [
    "popi tablet", "popi sve tablet", "popi lijek", "popi lek", "popi sve lijek", "popi sve lek", "popi sve",
    "progut tablet", "progut lijek", "progut lek", "progut sve", "progut pilul",
    "popi|progut + kutij|bocu|cijel + lijek|lek|tablet|pilul", "tablet popi", "lijekov popi", "popi bocu", "predoz", "overdos", "took pills", "took all",
    "swallowed", "pills + took", "presjec vene", "prerez vene", "=vene", "=vena", "wrist",
    "skoc s", "skoc sa", "skoc kroz", "skocit", "skocicu", "skocim", "stojim na most", "na most sam", "na mostu",
    "na krov", "na ivici", "objes", "vjesa", "konop + vrat",
    "zadnj poruk", "posljednj poruk", "poslednj poruk", "oprostite mi + svi", "zbogom", "last message", "goodbye",
    "jump off", "on the bridge", "on the roof", "hang myself", "rope",
    "uzel|uzeo|uzimam|uzmem|pojel|pojeo + bocic|kutij|cijel|sve|puno|mnogo + tablet|lijek|lek|pilul",
    "konopac", "konopc", "=konop", "=uze", "uzetom", "noose", "omc", "oprostajn",
    # Pills named, or with alcohol, in a quantity: an overdose in the making.
    "tablete za spavanj|sleeping pill|apaurin|bensedin|xanax|ksanaks|diazepam|lexaurin|normabel|trodon|tramal + "
    "sve|cijel|citav|kutij|bocic|=all|whole|bottle|box|popi|progut|uzel|uzeo|took|swallow",
    "sve|cijel|citav|kutij|=all|whole|entire + tablet|lijek|lek|pilul|pills + alkohol|rakij|votk|vodk|viski|whisk|"
    "=vino|=pivo|alcohol|wine|beer",
    # A time set for the end: tonight is the plan, not a thought.
    "veceras|noceras|nocas|tonight & zavrs sa|nestat|umr|=die|=end it|end everything|sve ce bit gotovo|zbogom|goodbye",
    # A wound that will not stop bleeding, or a deep cut, is an emergency whatever the intent.
    "=krv|=krvi|krvar|bleed|blood & ne prestaj|ne staje|nece da stane|nece stat|ne mogu zaustav|ne mogu da zaustav|"
    "wont stop|cant stop|svuda|everywhere|lokv",
    "duboko|deep|preduboko & rez|posjek|posek|isjek|isek|sjekl|sekl|cut",
 "oprosten pismo", "necete me vidjet", "vise me necete",
    "nikad me vise", "=zbogom",
], negatable=True)
rule("Spominje samoubistvo ili samopovređivanje", "suicide_self_harm", "high", [
    "pod voz", "pod vlak", "pod auto", "pod kamion", "under a train", "in front of a train", "in front of a car",
    "bacim se", "baci se", "bacit se", "se bacim", "se baci",
    "samoubi", "samoubo", "suicid", "samopovr", "povrijed sebe", "povred sebe", "povredj sebe", "rez se", "sijec se",
    "se rez", "se sijec", "se sjec", "zilet", "pomisl na smrt", "pomisl o smrt",
    "secem se", "sjecem se", "rezem ruk", "rezem se", "posjekl|posekl|isjekl|isekl|izrezal|izrezao & se|ruk|=cut", "self harm", "selfharm", "hurt myself", "hurting myself",
    "cutting myself", "mislim o smrt", "razmisl o smrt", "misl na smrt", "better off dead", "bolje da me nema",
    "bolje bi bilo da me nema", "da me nema", "nema smisla ziv", "nema smisla",
])

# --- Domestic violence ---------------------------------------------------------------------------------
rule("Prijetnja ubistvom", "domestic_violence", "critical", [
    "ubi me", "me ubi", "ubij me", "ubi nas", "nas ubi", "ubic me", "ubi mene", "zakolje", "zakoljem", "zakoljes", "zakoljemo", "pokla",
    "pokolj", "zaklat", "kill me", "kill us",
    "kill her", "kill him", "going to kill", "will kill", "prijet smrc",
])
rule("Spominje ubijanje", "domestic_violence", "critical", [
    "=ubiti", "=ubit", "=ubiti", "ubice", "ubicu", "ubices", "ubije", "ubijem", "ubijes", "ubijat", "ubio", "ubila",
    "=kill", "=killed", "murder",
])
rule("Oružje", "domestic_violence", "critical", [
    "=noz", "nozem", "noza", "pistolj", "puska", "pusku", "sjekir", "sekir", "oruzj", "oruzi", "bomb", "=knife",
    "=gun", "=axe", "weapon",
])
rule("Nasilje se dešava sada", "domestic_violence", "critical", [
    "tuc me", "me tuc", "tuce nas", "nas tuc", "bije me", "me bije", "bij me", "udar me", "me udar", "udari me",
    "davi me", "gus me", "dav + vrat", "zadav", "=vrat + stis|steg|stez|gus|dav", "izgubi zrak", "nisam mogl disat",
    "nisam mogao disat", "ne mogu disat", "pretuk", "prebi", "krvar", "u krvi", "silov", "=rape", "raped",
    "hitting me", "beating me", "beats me", "choking me", "strangl", "he is hitting", "attacking me", "napao me",
    "zakljuc nas", "zakljuc me", "zatvor nas", "zatvor me", "ne da izac", "ne pusta izac", "ne pusta van",
    "locked us", "locked me",
    # The same violence with a verb prefix ("istukao", "izudarao", "izmlatio") or in the present ("siluje"). Written out
    # one by one: a prefix allowed on every word would read "upala" (an inflammation) as "pala" (she fell).
    # Stabbing as whole words: "izbo" begins "izbori", "izbola" is one slip from "izboljšati". One line each: one
    # alternative for the engine to pass over, not twenty (the request path's check must stay under a millisecond).
    "istuk|istuc|izudar|izmlat|mlati me|me mlati|izbi me|izbio me|izbila me|siluj",
    "=izbo|=izbola|=izbode|=izbodu|=izboden|=izbodena|=ubo|=ubola|=ubode|=uboden|=uboli|=probo|=probola|=probode",
    "ispred vrat", "lupa na vrat", "lupa u vrat", "provaljuj", "provali", "razvaljuj", "razbij vrat", "razbi vrat",
    "outside the door", "breaking the door", "break the door", "break in",
    "u opasnost", "=in danger", "bojim se za zivot", "bojim se za svoj zivot", "scared for my life", "afraid for my life",
    "fear for my life", "sakri", "skriv", "hiding", "pobjeg", "pobeg", "=bjezim", "=bezim", "bjezimo", "bezimo",
    "running from", "=escaped",
])
NOW = ("=sad|=sada|upravo|trenutno|veceras|noceras|nocas|ovog trena|ovog momenta|ovaj cas|u ovom trenutku|"
       "=now|right now|tonight|as we speak|at the moment")
VIOLENCE = "tuc|tuk|=bije|udar|davi|napad|pretuk|prebi|siluj|hitting|beating|attack|strangl|=hurting"
rule("Nasilje upravo sada", "domestic_violence", "critical", [
    f"{VIOLENCE} & {NOW}",
])
# A person who cannot speak freely: the abuser is in the room, or back, and she is afraid.
rule("Ne može slobodno govoriti", "domestic_violence", "critical", [
    "ne mogu|ne smijem|ne smem|=cant|cannot & pricat|govori|zvat|glasno|pisat|dugo|talk|speak|=call|text|write & "
    "cuje|slusa|=tu|ovdje|ovde|pored mene|kraj mene|=hear|listening|=here|next to me|in the room",
    # A call asked for under a pretext ("as if you were the bank") means someone is watching.
    "kao da ste iz|kao da ste sa|kao da ste s|as if you were|as if youre|pretend to be|pretend youre + nazov|zovi|call|pozov",
    "on je tu|on je ovdje|on je ovde|on je opet tu|opet je tu|on je vani|on je napolju|on je ispred|on je pred|"
    "=he =is =here|=hes =here|=he =is back|=hes back|=he =is outside|=hes outside|=he =is home|=hes home + "
    "bojim|strah|plasim|prepad|scared|afraid|terrified|frightened|pomoz|help|dodj|dodit|come|ne smijem|ne smem|"
    "ne mogu prica|ne mogu govori|cant talk|cannot talk|cant speak",
])
rule("Nasilje u porodici", "domestic_violence", "high", [
    "nasil", "batin", "tuk", "tuc", "=bije", "bio me", "udara", "udario", "udarila", "udarao", "sutnu", "samar", "samari",
    "osamar", "isamar", "mlat", "modric", "masnic", "ozljed", "povrijedi", "povredi", "zlostav", "maltret", "abus", "violen", "=hit me", "hit her",
    "hurts me", "bruis", "slapp", "punch", "kick",
    "prijeti mi", "prijeti da", "prijetio", "prijetila", "prijeti nam", "prijetnj", "threatens me", "threatened me",
    "threatens to", "prati me", "uhod", "stalk", "proganj", "napad me", "me napad", "napada me", "ogreb", "gurnu me",
    "gurnuo me", "gurnula me", "gura me", "pushed me", "shoved me", "slapped me", "kicked me",
    "muz + pijan", "muz + agres", "pijan + vice", "razbija stvari", "baca stvari", "smashing",
])
rule("Porodični sukob", "domestic_violence", "normal", [
    "vice na", "=vice", "lupa vratim", "vrijedj", "vredj", "vrijedja", "psuje me", "ponizava", "kontrolis", "ljubomor",
    "svadj", "razvod", "razves", "razvest", "agresiv", "control",
    "checks my phone", "tracks my", "wont let me", "doesnt let me", "ne da mi da", "ne dozvoljava mi", "ne dopusta mi",
    "zabranjuje mi", "uzima mi telefon", "cita mi poruk", "provjerava mi telefon", "proverava mi telefon", "trapped",
    "zarobljen",
    "zabran prilask", "zastitn mjer", "zastitnu mjeru", "yelling", "shouting", "controls me", "divorce", "restraining order",
    "bivsi muz", "bivsi suprug", "bivsa zena", "ex husband", "ex wife", "ex partner",
])

rule("Životna opasnost", "other", "critical", [
    "ne dise", "ne disem", "ne dis", "tesko dise", "bez svijest", "bez svest", "onesvijest", "onesvest", "not breathing",
    "unconscious", "ne reaguj", "ne mice se",
])

# --- Child protection ----------------------------------------------------------------------------------
rule("Dijete u neposrednoj opasnosti", "child_protection", "critical",
    [f"{verb} {kid}" for verb in ["tuc", "bij", "udar", "davi", "zakljuc", "pretuk"] for kid in ["dijet", "djec", "dete", "dec", "bebu", "sina", "kcer", "cerk"]]
    + [KIDS_ALTS + " + =sama u|=sam u|=sami u|=same u|=samu u|samo u autu|samo u stanu|samo kod kuc|sama kod kuc|sami kod kuc|djecu samu|decu samu|zivi sam|alone|nikog nema|niko nije s|nobody|no one|smrz|freezing|luta|lutaju|ostavi|ostavlj|napust|zaboravi|pijan|drunk|nesvijest|nesvest|krvar|=noz|ubi|kill|zakljuc|locked"]
    + [KIDS_ALTS + f" & {VIOLENCE}|zlostav|abus & {NOW}"]
    + ["udar|tuc|bij|davi + malog brat|malu sestr|mladj brat|mladj sestr|mladjeg brat|mladju sestr"]
    + [KIDS_ALTS + " + balkon|prozor|sprat|krov|rijek|jezer|bazen|=struj|vatr|=dim|dimom|pozar|=plin|cesti|cesta|autoput|road|window|fire"]
    + ["hitting the child", "hitting the kids", "beating the child", "beating my son", "beating my daughter",
       "dira + dijet", "dira + djevojcic", "dira + kcer", "dira + cerk", "dira + sin", "pipa + dijet", "pedofil",
       "seksual + dijet", "seksual + djec", "seksual + dete", "seksual + kcer", "seksual + maloljet", "touching + daughter",
       "touches + child", "molest",
       "=dira me|dirao me|dirala me|pipa me|pipao me|touches me|touched me|touching me + ocuh|ocus|=otac|=tata|ujak|stric|"
       "dajdz|tetak|=brat|mamin|stepfather|stepdad|father|=dad|uncle|godina|years old|=im 1"],
)
rule("Dijete u riziku", "child_protection", "high",
    [KIDS_ALTS + " + " + "|".join(["gladn", "ne jed", "=nije jel", "nisu jel", "ne jedu", "hungry", "zanemar", "neglect", "prljav", "prosj", "prosi", "beg", "na ulici", "bez nadzor", "tuk", "=bije", "udar", "zlostav", "abus", "modric", "bruis", "=hit", "vrsnjack", "bully", "maltret", "pijan", "drunk", "belt", "kais", "remen", "opasac", "=hits", "beats", "marks", "tragov", "prose", "bez hran", "bez struj", "bez grijanj", "=samu", "same"])]
    + ["zanemaruje djecu", "vrsnjack nasil", "bullying"],
)
rule("Dijete i porodica: potrebna podrška", "child_protection", "normal",
    [KIDS_ALTS + " + ne ide u skol|nece u skol|izostaj|bjezi od kuc|bezi od kuc|pobjeg od kuc|problem|ponasanj|skol|school|ne slusa|=slusa|ne dolazi kuc|laz|svadj|ne vraca|ne da da vid|vidjam|kontakt|vikend|razvod|divorce|custody|starij muskar|older man"],
)

# --- Elderly and disabled people -----------------------------------------------------------------------
OLD = ["=baka", "baku", "=baki", "bakom", "nana", "nanu", "djed", "deda", "dedu", "starij", "=stari", "=stara", "staric", "starac", "penzioner", "komsinic",
       "komsij", "nepokretn", "invalid", "osob sa invalid", "invalidit", "elderly", "grandm", "grandf", "grandpa",
       "neighbour", "neighbor", "disabled", "bolesn", "dementn", "demencij", "alzheim"]
rule("Stara ili nemoćna osoba u neposrednoj opasnosti", "elderly_disability", "critical",
    ["|".join(OLD) + " + " + "|".join(["pao", "pala", "ne moze ustat", "ne moze da ustan", "na podu", "lezi na pod", "ne javlja", "ne otvara", "bez svijest", "bez svest", "nesvijest", "nesvest", "not answering", "fell", "on the floor", "unconscious", "smrz", "bez grijanj", "freezing", "days without food"]), "|".join(OLD) + " + danima|days + ne jed|bez hran|without food"],
)
rule("Stara ili nemoćna osoba u riziku", "elderly_disability", "high",
    ["|".join(OLD) + " + " + "|".join(["zivi sam", "zivi sama", "=sama u", "=sam u", "sam kod kuc", "sama kod kuc", "alone", "zanemar", "neglect", "gladn", "hungry", "uzima penzij", "uzima mu penzij", "uzima joj penzij", "otima", "takes her pension", "takes his pension", "dozivotn izdrz", "dozivotnom izdrz", "tuk", "tuc", "=bije", "udara", "zlostav", "abus", "niko ne brin", "nema ko", "no one", "nobody"])],
)
rule("Stari i nemoćni: potrebna njega", "elderly_disability", "normal", [
    "njeg", "kucna pomoc", "pomoc u kuc", "dom za star", "domu za star", "starack dom", "smjestaj", "smestaj",
    "dnevni boravak", "dnevni centar", "nepokretn", "=invalid", "invalidit", "invalidsk", "autiz", "down sindrom",
    "cerebraln", "poseb potreb", "demencij", "dementn", "alzheim", "elderly", "disabled",
    "disability", "care home", "nursing home", "tudja njega", "tudju njegu", "nursing", "home help",
])

# --- Floods and power cuts -----------------------------------------------------------------------------
# The 2014 floods: people trapped by water, old or bedridden people with water rising at home, and people whose
# oxygen or dialysis machine stops when the power goes. Danger to life now.
WATER = "poplav|=voda|=vode|=vodu|=vodom|bujic|flood|=water"
TRAPPED = ("ne moze izac|ne mozemo izac|ne mogu izac|ne moze da izadj|ne mozemo da izadj|ne mogu da izadj|ne moze van|"
           "ne mozemo van|ne mogu van|ne moze napolj|zarobljen|zatocen|odsjecen|odsecen|na krovu|na tavan|"
           "cant get out|cannot get out|can not get out|trapped|stuck|on the roof|in the attic|cut off")
RISING = ("ulazi|ulaze|usla|prodire|prodrl|nadire|nadolazi|raste|=do kreveta|=do pojasa|=do koljena|"
          "=do kolena|=do prozora|rising|coming in|coming into|getting in|pouring in")
POWER_OUT = ("nestal struj|nestalo je struj|nema struj|bez struj|struja nestal|nestanak struj|power cut|power out|"
             "no power|no electricity|without power|without electricity")
DEVICE = ("kiseonik|kisik|koncentrator|aparat za disanj|aparatu za disanj|respirator|dijaliz|oxygen|concentrator|"
          "ventilator|dialysis")
rule("Poplava: ljudi zarobljeni vodom", "other", "critical", [f"{WATER} + {TRAPPED}"])
rule("Poplava ili nestanak struje: nemoćna osoba u opasnosti", "elderly_disability", "critical", [
    # Three parts anywhere in the message ("&" would hold all three to one clause, and the person is often named
    # in the next one: "voda ulazi u kuću, mama je nepokretna").
    f"{WATER} + {RISING} + " + "|".join(OLD),
    f"{DEVICE} + {POWER_OUT}",
])
rule("Voda ulazi u kuću", "other", "high", [f"{WATER} & {RISING}"])

# --- Mental health -------------------------------------------------------------------------------------
rule("Akutna psihička kriza", "mental_health", "high", [
    "cuje glas", "cujem glas", "glasov", "halucin", "psihoz", "paranoj", "=ne mog vise", "ne mogu vise", "nmg vise",
    "hears voices", "hearing voices", "psychos", "cant go on", "cant take it", "cant cope", "breakdown", "slom",
    "poludi", "poludet", "poludjet", "prica sam sa sobom", "prica sama sa sobom", "misl da + prat|proganj|truj",
    "ne izlazi iz krevet", "ne ustaje iz krevet", "preko televiz", "kroz televiz", "kroz zid", "ne spava danima",
    "ne spava nocima", "days without sleep", "hasnt slept",
])
rule("Psihičke teškoće", "mental_health", "normal", [
    "depres", "anksioz", "anksiozn", "panic", "panik", "strah", "usamljen", "tuzn", "tuzan", "tuga", "povucen",
    "ne mogu spavat", "feel empty", "feel sad", "so sad",
    "nesanic", "psiholog", "psihijatr", "terapij", "stres", "izgubljen", "bezvoljn", "prazn", "lonely", "anxiety",
    "anxious", "sad all", "cant sleep", "stress", "therapist", "counsel", "razgovor", "razgovarat", "porazgovarat",
    "talk to someone", "someone to talk", "saslusa", "da pricam s", "da razgovaram s", "nocne more", "nightmare",
    "flashback", "ptsp", "ptsd", "trauma", "ne prica ni sa kim", "ne prica ni s kim", "savjetoval", "savetoval",
    "mentaln zdrav", "mental health", "bad week", "bad day", "=zatvoren u sebe", "povukao se", "povukla se",
])

# --- Addiction -----------------------------------------------------------------------------------------
rule("Ovisnost", "addiction", "normal", [
    "alkohol", "alkoholi", "pijan", "=pije", "pije svaki", "pije stalno", "pijanstv", "drog", "narkoman", "heroin",
    "kokain", "marihuan", "trav", "tablet + ovis", "ovisn", "zavisn", "kock", "kladion", "automat", "kladi",
    "alcohol", "drunk", "drinking", "drinks", "drugs", "addict", "gambl", "betting", "lijecen + alkohol", "rehab", "odvikavanj",
    "metadon", "pijem svak", "pijem svaku", "pijem previse", "pijem puno", "pijem da", "drink every", "drinking every",
    "igra na aparat", "aparatima", "=komuni", "=komunu", "=komuna", "=aa =meeting", "=na =meeting", "anonimn alkohol",
    "apstinenc", "sober", "trezn",
])

# --- Material need -------------------------------------------------------------------------------------
rule("Bez krova ili hrane", "material_need", "high", [
    "delozac", "izbac + stan", "izbac + kuc", "izbacio nas", "izbacili nas", "na ulici", "nemam gdje spavat",
    "nemamo gdje spavat", "nemam gde spavat", "nemamo gde", "nemam gdje", "nemamo gdje", "bez krova", "beskucn",
    "homeless", "evict", "kicked out", "nowhere to sleep", "nemamo sta jest", "nemamo hran", "nemam hran",
    "nemam sta jest", "nemamo|nemam + jest|hran|hljeb|hleb", "nemam za hljeb", "nemam za hleb", "nemamo za hljeb", "nemamo za hleb", "gladn smo", "gladni smo",
    "no food", "nothing to eat", "starving", "bez grijanj + djec", "smrzav",
])
rule("Materijalna potreba", "material_need", "normal", [
    "nemam novc", "nemamo novc", "nemam para", "nemamo para", "nemam posl", "ostal bez posl", "ostao bez posl",
    "nezaposlen", "=dug", "dugov", "racun", "struj", "iskljuc", "grijanj", "kirij",
    "stanarin", "najam", "=hrana", "hrane", "hranu", "paket", "lijekov + novc", "lekov + novc", "money", "rent",
    "bills", "debt", "heating", "food", "unemployed", "lost my job", "afford", "siromas", "poverty", "samohran",
    "kraj s krajem", "pomoc + novc", "pomoc + hran", "drva",
])
rule("Socijalna davanja", "material_need", "low", [
    "socijaln pomoc", "stalna pomoc", "stalnu pomoc", "djecij doplat", "djecji doplat", "djecij dodat", "decij dodat",
    "decji dodat", "doplatak", "dodatak za djec", "porodiljsk", "penzij", "invalidnin", "alimentac", "benefit",
    "allowance", "pension", "jednokratn pomoc", "novcan pomoc", "ogrjev", "ogrev", "invalidnin",
])

# --- Information ---------------------------------------------------------------------------------------
rule("Pitanje o postupku ili informacija", "information", "low", [
    "radno vrijem", "radno vreme", "kad radite", "kada radite", "do kad radite", "do kada radite", "koji dokument",
    "koje dokument", "dokument + potreb", "dokument + treb", "dokumentacij", "kako + prijav", "kako + aplicir",
    "kako + podnij", "kako + podnet", "kako + ostvar", "kako + dobi", "gdje + nalazite", "gde + nalazite", "adres",
    "zahtjev", "zahtev", "obraz", "informacij", "info", "da li mogu", "mogu li", "imam li pravo", "pravo na", "rok",
    "hraniteljstv", "hranitelj", "usvoj", "usvaj", "staratelj", "termin", "opening hours", "what documents",
    "which documents", "how do i apply", "how to apply", "how can i apply", "where are you", "information", "am i entitled",
    "foster", "adopt", "eligib", "office", "papir", "potvrd", "uvjerenj", "uverenj", "rjesenj", "resenj", "procedur",
    "postupak", "postupk", "da li radite", "radite li", "zakaz", "licn kart", "uslov", "address", "centr + gdje|gde|adres",
    "broj telefon", "phone number", "radionic", "workshop", "brosur", "brochure", "leaflet", "besplatn", "free of charge",
    "koliko dugo vazi", "vazi li", "nalaz komisij", "kategorizacij", "support group", "grupa za", "grupe za",
    "group for", "zanima me", "interested in", "da li postoji", "postoji li", "is there a", "are there",
])

# --- Other ---------------------------------------------------------------------------------------------
rule("Hitan poziv bez detalja", "other", "high", [
    "=hitno", "=sos", "urgent", "emergency", "pomozite + brzo", "pomoc + odmah", "help + now", "help me now",
])
rule("Traži pomoć bez detalja", "other", "normal", ["=pomozite", "=help", "=help me", "=pomoc", "=pomoć"])
rule("Nije socijalna zaštita", "other", "low", [
    "pogres broj", "pogresan broj", "wrong number", "=test", "testiram", "reklam", "=hvala", "thanks", "thank you",
    "pozdrav", "dobar dan", "zalba na", "prigovor", "complain",
])
if __name__ == "__main__":
    print(json.dumps(R, ensure_ascii=False, indent=1))
